//! Organizations' API keys: issued once in plain text, stored as SHA-256 hashes.

use crate::clock::new_id;
use crate::core::Actor;
use crate::core::Caller;
use crate::core::Core;
use crate::domain::access::{Scope, Scopes};
use crate::domain::organization::{Organization, OrganizationSettings};
use crate::domain::validation;
use crate::error::Error;
use crate::error::Reason;
use crate::service::throttle::{AuthThrottle, KeyRateLimit, Limits};
use crate::storage::ApiKeyRecord;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// Authentication of API keys, organizations and their keys (the command line).
#[derive(Clone)]
pub struct Auth {
    core: Arc<Core>,
    /// Failed authentications per client address.
    throttle: Arc<AuthThrottle>,
    /// Calls per key and minute.
    rate: Arc<KeyRateLimit>,
}

impl Auth {
    pub fn new(core: Arc<Core>, limits: Limits) -> Self {
        Self {
            core,
            throttle: Arc::new(AuthThrottle::new(limits.auth_failures_per_minute)),
            rate: Arc::new(KeyRateLimit::new(limits.key_requests_per_minute)),
        }
    }

    /// The throttle of failed authentications (the gRPC authentication path checks it).
    pub fn throttle(&self) -> &AuthThrottle {
        &self.throttle
    }
}

/// Every key starts with this, so leaked keys are easy to recognise in logs and scanners.
const KEY_PREFIX: &str = "dun_";
/// Characters of a key kept in clear to identify it in `key list`.
const SHOWN_PREFIX_LEN: usize = 12;

/// A newly issued key: the only time its plain text exists.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub plain_text: String,
}

fn hash_key(plain_text: &str) -> String {
    hex::encode(Sha256::digest(plain_text.as_bytes()))
}

fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl Auth {
    /// Resolves a bearer key to its organization, for a call that needs `scope`:
    /// PERMISSION_DENIED (`SCOPE_MISSING`, naming the scope) when the key lacks it.
    pub async fn authorize(
        &self,
        plain_text: &str,
        scope: Scope,
        call: &str,
    ) -> Result<Caller, Error> {
        let (caller, scopes) = self.key_of(plain_text).await?;
        if let Actor::ApiKey(key) = caller.actor {
            self.rate.admit(key)?;
        }
        if !scopes.contains(scope) {
            return Err(Error::PermissionDenied {
                reason: Reason::ScopeMissing,
                message: format!(
                    "{call} needs an API key with the `{}` scope; this key has `{}`",
                    scope.as_str(),
                    scopes.to_text()
                ),
            });
        }
        Ok(caller)
    }

    /// Checks a call made over a connection whose client certificate (mTLS) names
    /// `certificate_organization` (its subject common name): the key must be of that
    /// organization, so a leaked key is of no use without the organization's certificate.
    pub async fn check_certificate(
        &self,
        caller: Caller,
        certificate_organization: Option<&str>,
    ) -> Result<(), Error> {
        let organization = self
            .core
            .store
            .find_organization(caller.organization_id)
            .await?;
        let key_organization = organization.as_ref().map(|o| o.settings.name.as_str());
        if certificate_organization.is_some() && certificate_organization == key_organization {
            return Ok(());
        }
        Err(Error::PermissionDenied {
            reason: Reason::CertificateOrganizationMismatch,
            message: match certificate_organization {
                Some(name) => format!(
                    "the client certificate is for organization `{name}`; this API key is of \
                     another organization"
                ),
                None => "the client certificate has no common name naming an organization".into(),
            },
        })
    }

    /// Resolves a bearer key to its organization (whatever its scopes).
    pub async fn authenticate(&self, plain_text: &str) -> Result<Caller, Error> {
        Ok(self.key_of(plain_text).await?.0)
    }

    /// The caller a key stands for and what it may do. The key is looked up by its hash on
    /// every call, so a revoked or expired key stops working at once on every replica; an
    /// unknown key and a wrong one are the same case (no key has that hash).
    async fn key_of(&self, plain_text: &str) -> Result<(Caller, Scopes), Error> {
        let unauthenticated = |reason, message: &str| Error::Unauthenticated {
            reason,
            message: message.into(),
        };
        if !plain_text.starts_with(KEY_PREFIX) {
            return Err(unauthenticated(
                Reason::ApiKeyInvalid,
                "the API key is not valid",
            ));
        }
        let record = self
            .core
            .store
            .find_api_key_by_hash(&hash_key(plain_text))
            .await?
            .ok_or_else(|| unauthenticated(Reason::ApiKeyInvalid, "the API key is not valid"))?;
        if record.revoked_at.is_some() {
            return Err(unauthenticated(
                Reason::ApiKeyRevoked,
                "the API key was revoked",
            ));
        }
        if record.expires_at.is_some_and(|at| self.core.now() >= at) {
            return Err(unauthenticated(
                Reason::ApiKeyExpired,
                "the API key expired",
            ));
        }
        let caller = Caller {
            organization_id: record.organization_id,
            actor: Actor::ApiKey(record.id),
        };
        Ok((caller, record.scopes))
    }

    /// Creates an organization with its first API key, atomically.
    pub async fn create_organization(
        &self,
        name: &str,
    ) -> Result<(Organization, IssuedKey), Error> {
        let name = validation::required_text(name).map_err(|e| Error::field("name", e))?;
        let now = self.core.now();
        let org = Organization {
            id: new_id(),
            settings: OrganizationSettings::new(&name),
            created_at: now,
            updated_at: now,
        };
        let tx = self.core.store.begin().await?;
        tx.insert_organization(&org).await?;
        let key = self.issue_key(&tx, org.id, Scopes::ALL, None).await?;
        tx.commit().await?;
        Ok((org, key))
    }

    /// On an empty database, creates the organization `default` and returns its key.
    /// Every organization (the command line's `org list`).
    pub async fn list_organizations(&self) -> Result<Vec<Organization>, Error> {
        self.core.store.list_organizations().await
    }

    pub async fn ensure_first_organization(
        &self,
    ) -> Result<Option<(Organization, IssuedKey)>, Error> {
        if self.core.store.count_organizations().await? > 0 {
            return Ok(None);
        }
        match self.create_organization("default").await {
            Ok(created) => Ok(Some(created)),
            // Another replica created it first.
            Err(Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Issues another key for the organization named `org_name`, with every scope and no
    /// expiry.
    pub async fn create_api_key(&self, org_name: &str) -> Result<IssuedKey, Error> {
        self.create_scoped_api_key(org_name, Scopes::ALL, None)
            .await
    }

    /// Issues another key for the organization named `org_name` that may only do what
    /// `scopes` allow, until `expires_at` if given.
    pub async fn create_scoped_api_key(
        &self,
        org_name: &str,
        scopes: Scopes,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<IssuedKey, Error> {
        if scopes == Scopes::NONE {
            return Err(Error::field("scopes", "at least one scope is required"));
        }
        if expires_at.is_some_and(|at| at <= self.core.now()) {
            return Err(Error::field("expires_at", "must be in the future"));
        }
        let org = self.organization_by_name(org_name).await?;
        let tx = self.core.store.begin().await?;
        let key = self.issue_key(&tx, org.id, scopes, expires_at).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Keys of the organization named `org_name`, oldest first.
    pub async fn list_api_keys(&self, org_name: &str) -> Result<Vec<ApiKeyRecord>, Error> {
        let org = self.organization_by_name(org_name).await?;
        self.core.store.list_api_keys(org.id).await
    }

    /// Revokes a key by id; requests with it are refused from then on.
    pub async fn revoke_api_key(&self, key_id: Uuid) -> Result<(), Error> {
        if self
            .core
            .store
            .revoke_api_key(key_id, self.core.now())
            .await?
        {
            Ok(())
        } else {
            Err(Error::not_found(
                Reason::ApiKeyNotFound,
                format!("no active API key with id {key_id}"),
            ))
        }
    }

    async fn organization_by_name(&self, name: &str) -> Result<Organization, Error> {
        self.core
            .store
            .find_organization_by_name(name)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    Reason::OrganizationNotFound,
                    format!("no organization named `{name}`"),
                )
            })
    }

    async fn issue_key(
        &self,
        tx: &crate::storage::Tx,
        organization_id: Uuid,
        scopes: Scopes,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<IssuedKey, Error> {
        let plain_text = generate_key();
        let record = ApiKeyRecord {
            id: new_id(),
            organization_id,
            prefix: plain_text[..SHOWN_PREFIX_LEN].to_owned(),
            created_at: self.core.now(),
            revoked_at: None,
            scopes,
            expires_at,
        };
        tx.insert_api_key(&record, &hash_key(&plain_text)).await?;
        Ok(IssuedKey { record, plain_text })
    }
}
