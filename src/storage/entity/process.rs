use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "processes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub customer_id: Uuid,
    pub customer_external_id: String,
    pub currency_code: String,
    pub policy_code: String,
    pub policy_version: i32,
    pub scope: String,
    pub scope_key: String,
    /// `scope_key` while the process is open, NULL once it ended (unique per organization).
    pub open_scope_key: Option<String>,
    pub state: String,
    /// Empty unless PAUSED.
    pub pause_reason: String,
    pub current_step_index: i32,
    pub attempt: i32,
    /// YYYY-MM-DD.
    pub anchor_date: String,
    pub next_step_at: Option<i64>,
    pub last_step_at: Option<i64>,
    /// The engine's claim column: when work is due, or the lease of a claimed process.
    pub due_at: Option<i64>,
    pub waiting_step_run_id: Option<Uuid>,
    /// YYYY-MM-DD or empty.
    pub promised_date: String,
    pub promised_amount_minor: Option<i64>,
    /// The end of the promised day (the promise is kept or broken then); NULL without one.
    pub promise_deadline_at: Option<i64>,
    /// What was due when the promise was made.
    pub promise_owed_minor: Option<i64>,
    /// When the promise was made; payments from then on keep it.
    pub promise_made_at: Option<i64>,
    /// The process's payment plan as JSON (`PaymentPlan`); NULL if it never had one.
    pub payment_plan: Option<String>,
    pub note: String,
    pub payment_retries_blocked: bool,
    pub suspension_requested: bool,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
    /// W3C `traceparent` of the request that made the process due (cleared by the step).
    pub trace_context: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
