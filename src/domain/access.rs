//! What an API key may do: its scopes. A dashboard or a stream subscriber needs `read`, a
//! billing sync `write`, the payments service reporting results `payments`, and whoever manages
//! policies, webhooks, templates and the organization's settings `admin`.

/// One permission of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything that only reads: Get*, List*, WatchEvents, previews, simulations, reports.
    Read,
    /// Syncing customers, invoices and payments, and the operator commands on processes.
    Write,
    /// Reporting the outcome of a charge (RecordPaymentResult).
    Payments,
    /// Policies and their assignment, webhooks, templates, the organization's settings.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Payments, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Payments => "payments",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope: keys issued before scopes existed, and the service itself.
    pub const ALL: Scopes = Scopes(0b1111);
    /// No scope at all.
    pub const NONE: Scopes = Scopes(0);

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// `read,write,...` (at least one; spaces allowed).
    pub fn parse(text: &str) -> Result<Scopes, String> {
        let mut bits = 0u8;
        for name in text.split(',').map(str::trim) {
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| {
                    format!("unknown scope `{name}`: expected read, write, payments or admin")
                })?;
            bits |= scope.bit();
        }
        Ok(Scopes(bits))
    }

    /// The scopes as `parse` reads them, in a fixed order.
    pub fn to_text(self) -> String {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_refuse_unknown_names() {
        let scopes = Scopes::parse("write, read").unwrap();
        assert!(scopes.contains(Scope::Read) && scopes.contains(Scope::Write));
        assert!(!scopes.contains(Scope::Admin));
        assert_eq!(scopes.to_text(), "read,write");
        assert_eq!(Scopes::parse(&Scopes::ALL.to_text()), Ok(Scopes::ALL));
        assert!(Scopes::parse("").is_err());
        assert!(Scopes::parse("read,root").unwrap_err().contains("root"));
    }
}
