//! A payments service for tests: a real HTTP/1.1 server on 127.0.0.1 that verifies the
//! signature of each charge request, charges at most once per idempotency key (as a real PSP
//! integration would), and answers as the test tells it to.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/charges", listener.local_addr().unwrap());
        let server = PaymentsServer {
            url,
            mode: Arc::new(Mutex::new(Mode::Succeed)),
            state: Arc::default(),
        };
        let handler = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = handler.serve(socket).await;
                });
            }
        });
        server
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

    async fn serve(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(socket);
        let mut headers = HashMap::new();
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((k, v)) = trimmed.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let key = headers.get("idempotency-key").cloned().unwrap_or_default();
        let signature = headers
            .get("dunning-signature")
            .cloned()
            .unwrap_or_default();
        let signature_valid = dunning::domain::signature::verify(SECRET, &key, &body, &signature);
        let mode = self.mode.lock().unwrap().clone();
        let (status, answer) = {
            let mut state = self.state.lock().unwrap();
            state.requests.push(ReceivedCharge {
                idempotency_key: key.clone(),
                signature_valid,
                body: serde_json::from_slice(&body).unwrap_or_default(),
            });
            if !signature_valid {
                (401, r#"{"error":"bad signature"}"#.to_owned())
            } else if let Some(reference) = state.charged.get(&key) {
                // A retry of a charge already made: the same answer, no new charge.
                (
                    200,
                    format!(r#"{{"status":"succeeded","reference":"{reference}"}}"#),
                )
            } else {
                match &mode {
                    Mode::Succeed | Mode::ChargeThenHang => {
                        let reference = format!("ch_{}", state.charged.len() + 1);
                        state.charged.insert(key.clone(), reference.clone());
                        (
                            200,
                            format!(r#"{{"status":"succeeded","reference":"{reference}"}}"#),
                        )
                    }
                    Mode::Decline { code, hard } => (
                        200,
                        format!(
                            r#"{{"status":"failed","reference":"ch_declined","decline_code":"{code}","decline_message":"declined by test","hard_decline":{hard}}}"#
                        ),
                    ),
                    Mode::Pending => (
                        200,
                        r#"{"status":"pending","reference":"ch_pending"}"#.into(),
                    ),
                    Mode::ServerError => (500, r#"{"error":"boom"}"#.into()),
                }
            }
        };
        if mode == Mode::ChargeThenHang {
            // Longer than the service's payment timeout in tests (500 ms).
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let mut socket = reader.into_inner();
        let reason = if status == 200 { "OK" } else { "Error" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await
    }
}
