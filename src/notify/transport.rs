//! Delivering a rendered notification: SMTP (lettre, pooled connections, STARTTLS / implicit
//! TLS / plain for a local relay) or, on the embedded default, an `.eml` file per message.

use crate::domain::notification::Notification;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;

/// Why a message was not delivered, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// A permanent rejection (5xx, or a message that cannot be built): do not retry.
    pub permanent: bool,
    pub message: String,
}

/// Where notifications go.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers the message; returns the server's response (or where it was written).
    async fn send(&self, notification: &Notification) -> Result<String, SendError>;

    /// How many messages may be in flight at once.
    fn concurrency(&self) -> usize;
}

/// Builds the MIME message: text and HTML alternatives, the notification's Message-ID, and a
/// header naming the notification for support.
pub fn build_message(n: &Notification) -> Result<Message, SendError> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| SendError {
        permanent: true,
        message: format!("{what}: {e}"),
    };
    let mailbox = |address: &str, name: Option<&str>| -> Result<Mailbox, SendError> {
        let email = address
            .parse()
            .map_err(|e| invalid(&format!("address `{address}`"), &e))?;
        Ok(Mailbox::new(
            name.filter(|n| !n.is_empty()).map(str::to_owned),
            email,
        ))
    };
    let mut builder = Message::builder()
        .from(mailbox(&n.from_email, Some(&n.from_name))?)
        .subject(n.subject.clone())
        .message_id(Some(n.message_id.clone()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Dunning-Notification-Id"),
            n.id.to_string(),
        ));
    if !n.reply_to_email.is_empty() {
        builder = builder.reply_to(mailbox(&n.reply_to_email, None)?);
    }
    for a in &n.recipients.to {
        builder = builder.to(mailbox(a, None)?);
    }
    for a in &n.recipients.cc {
        builder = builder.cc(mailbox(a, None)?);
    }
    for a in &n.recipients.bcc {
        builder = builder.bcc(mailbox(a, None)?);
    }
    let body = if n.html_body.is_empty() {
        MultiPart::mixed().singlepart(lettre::message::SinglePart::plain(n.text_body.clone()))
    } else {
        MultiPart::alternative_plain_html(n.text_body.clone(), n.html_body.clone())
    };
    let body = if n.attachments.is_empty() {
        body
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in &n.attachments {
            let content_type = lettre::message::header::ContentType::parse(&a.content_type)
                .map_err(|e| invalid(&format!("attachment `{}`", a.filename), &e))?;
            mixed = mixed.singlepart(
                lettre::message::Attachment::new(a.filename.clone())
                    .body(a.content.clone(), content_type),
            );
        }
        mixed
    };
    builder.multipart(body).map_err(|e| invalid("message", &e))
}

/// SMTP with a connection pool.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pool_size: u32,
}

impl SmtpMailer {
    /// `url` in lettre's form: `smtp://host:25` (plain, for a local relay),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465` (implicit TLS).
    pub fn from_url(url: &str, pool_size: u32) -> Result<SmtpMailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("DUNNING_SMTP_URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .pool_config(PoolConfig::new().max_size(pool_size.max(1)))
            .build();
        Ok(SmtpMailer {
            transport,
            pool_size: pool_size.max(1),
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    /// One message per pooled connection: each waits on network round trips, not on CPU.
    fn concurrency(&self) -> usize {
        self.pool_size as usize
    }

    async fn send(&self, notification: &Notification) -> Result<String, SendError> {
        let message = build_message(notification)?;
        match self.transport.send(message).await {
            Ok(response) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err(SendError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            }),
        }
    }
}

/// The embedded default: each message is written to `<dir>/<notification id>.eml`, complete
/// with its Bcc header, so a fresh `serve` needs no mail server.
pub struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    pub fn new(dir: PathBuf) -> FileMailer {
        FileMailer { dir }
    }
}

#[async_trait::async_trait]
impl Mailer for FileMailer {
    fn concurrency(&self) -> usize {
        4
    }

    async fn send(&self, notification: &Notification) -> Result<String, SendError> {
        let temporary = |e: std::io::Error| SendError {
            permanent: false,
            message: format!("writing to {}: {e}", self.dir.display()),
        };
        let message = build_message(notification)?;
        // The envelope is lost in a file; keep Bcc visible instead.
        let bcc = notification.recipients.bcc.join(", ");
        let mut bytes = Vec::new();
        if !bcc.is_empty() {
            bytes.extend_from_slice(format!("Bcc: {bcc}\r\n").as_bytes());
        }
        bytes.extend_from_slice(&message.formatted());
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(temporary)?;
        let path = self.dir.join(format!("{}.eml", notification.id));
        let partial = self.dir.join(format!(".{}.eml.partial", notification.id));
        tokio::fs::write(&partial, &bytes)
            .await
            .map_err(temporary)?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(temporary)?;
        Ok(format!("written to {}", path.display()))
    }
}
