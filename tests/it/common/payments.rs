//! A payments service for tests: verifies the signature of each charge request, charges at
//! most once per idempotency key (as a real PSP integration would), and answers as the test
//! tells it to.
#![allow(dead_code)]

use super::http::{self, HttpRequest, HttpResponse};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SECRET: &str = "payments-secret";

/// How the server answers the next charge requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Charges and answers `succeeded`.
    Succeed,
    /// Answers `failed` with this decline code.
    Decline { code: String, hard: bool },
    /// Answers `pending` (the result is reported later).
    Pending,
    /// Charges, then answers only after the client gave up waiting.
    ChargeThenHang,
    /// Answers 500 without charging.
    ServerError,
}

/// One charge request as received.
#[derive(Debug, Clone)]
pub struct ReceivedCharge {
    pub idempotency_key: String,
    pub signature_valid: bool,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    requests: Vec<ReceivedCharge>,
    /// Successful charges by idempotency key: the money taken.
    charged: HashMap<String, String>,
}

#[derive(Clone)]
pub struct PaymentsServer {
    pub url: String,
    mode: Arc<Mutex<Mode>>,
    state: Arc<Mutex<State>>,
}

impl PaymentsServer {
    pub async fn start() -> PaymentsServer {
        let mode = Arc::new(Mutex::new(Mode::Succeed));
        let state: Arc<Mutex<State>> = Arc::default();
        let (m, st) = (mode.clone(), state.clone());
        let base = http::serve(Arc::new(move |request| charge(&m, &st, request))).await;
        PaymentsServer {
            url: format!("{base}/charges"),
            mode,
            state,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> Vec<ReceivedCharge> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many distinct charges took money.
    pub fn charges_made(&self) -> usize {
        self.state.lock().unwrap().charged.len()
    }
}

fn charge(mode: &Mutex<Mode>, state: &Mutex<State>, request: HttpRequest) -> HttpResponse {
    let key = request.header("idempotency-key");
    let signature_valid = dunning::domain::signature::verify(
        SECRET,
        &key,
        &request.body,
        &request.header("dunning-signature"),
    );
    let mode = mode.lock().unwrap().clone();
    let mut state = state.lock().unwrap();
    state.requests.push(ReceivedCharge {
        idempotency_key: key.clone(),
        signature_valid,
        body: serde_json::from_slice(&request.body).unwrap_or_default(),
    });
    if !signature_valid {
        return HttpResponse::json(401, r#"{"error":"bad signature"}"#);
    }
    if let Some(reference) = state.charged.get(&key) {
        // A retry of a charge already made: the same answer, no new charge.
        return HttpResponse::json(
            200,
            format!(r#"{{"status":"succeeded","reference":"{reference}"}}"#),
        );
    }
    match &mode {
        Mode::Succeed | Mode::ChargeThenHang => {
            let reference = format!("ch_{}", state.charged.len() + 1);
            state.charged.insert(key, reference.clone());
            HttpResponse {
                status: 200,
                body: format!(r#"{{"status":"succeeded","reference":"{reference}"}}"#),
                // Longer than the service's payment timeout in tests (500 ms).
                delay: (mode == Mode::ChargeThenHang).then_some(Duration::from_secs(5)),
            }
        }
        Mode::Decline { code, hard } => HttpResponse::json(
            200,
            format!(
                r#"{{"status":"failed","reference":"ch_declined","decline_code":"{code}","decline_message":"declined by test","hard_decline":{hard}}}"#
            ),
        ),
        Mode::Pending => {
            HttpResponse::json(200, r#"{"status":"pending","reference":"ch_pending"}"#)
        }
        Mode::ServerError => HttpResponse::json(500, r#"{"error":"boom"}"#),
    }
}
