//! Email template kinds and who each kind is addressed to.

use std::fmt;

/// The kind of a dunning email: the reminder ladder and the other notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TemplateKind {
    /// First reminder after the due date: polite, assumes an oversight.
    FriendlyReminder,
    /// Second reminder: firmer, asks for payment without further delay.
    FirmReminder,
    /// Last reminder: names the consequences (suspension, collection agency).
    FinalNotice,
    /// Courtesy note before the due date.
    PreDueReminder,
    /// Asks for payment of the overdue balance, with the payment link and the invoice table.
    PaymentRequest,
    /// Internal email to the customer's sales rep: which customer, what is overdue.
    SalesNotification,
    /// Hand-over to the collection agency: customer, invoices, amounts, dunning history.
    CollectionAgencyHandover,
    /// Reminder of an upcoming instalment of the customer's payment plan, with the plan.
    InstalmentReminder,
}

impl TemplateKind {
    /// Every kind, in ladder order.
    pub const ALL: [TemplateKind; 8] = [
        TemplateKind::FriendlyReminder,
        TemplateKind::FirmReminder,
        TemplateKind::FinalNotice,
        TemplateKind::PreDueReminder,
        TemplateKind::PaymentRequest,
        TemplateKind::SalesNotification,
        TemplateKind::CollectionAgencyHandover,
        TemplateKind::InstalmentReminder,
    ];

    /// The stable name of the kind (`"friendly_reminder"`, ...), as used in the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::FriendlyReminder => "friendly_reminder",
            TemplateKind::FirmReminder => "firm_reminder",
            TemplateKind::FinalNotice => "final_notice",
            TemplateKind::PreDueReminder => "pre_due_reminder",
            TemplateKind::PaymentRequest => "payment_request",
            TemplateKind::SalesNotification => "sales_notification",
            TemplateKind::CollectionAgencyHandover => "collection_agency_handover",
            TemplateKind::InstalmentReminder => "instalment_reminder",
        }
    }

    /// The kind named by [`as_str`](Self::as_str); `None` for any other string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who an email of a kind is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The customer (to: its email, cc: its cc list, bcc: its and the policy's bcc lists).
    Customer,
    /// The customer's sales rep; internal, so the customer's cc and bcc lists are left out.
    SalesRep,
    /// The policy's collection agency; internal as well.
    CollectionAgency,
}

impl TemplateKind {
    /// Who emails of this kind go to. Exhaustive on purpose: a new kind must say its audience.
    pub fn audience(self) -> Audience {
        match self {
            TemplateKind::FriendlyReminder
            | TemplateKind::FirmReminder
            | TemplateKind::FinalNotice
            | TemplateKind::PreDueReminder
            | TemplateKind::PaymentRequest
            | TemplateKind::InstalmentReminder => Audience::Customer,
            TemplateKind::SalesNotification => Audience::SalesRep,
            TemplateKind::CollectionAgencyHandover => Audience::CollectionAgency,
        }
    }
}

impl serde::Serialize for TemplateKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TemplateKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        TemplateKind::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown template kind {name}")))
    }
}
