//! Provider credentials in AWS Secrets Manager. Values are held as [`SecretString`] and
//! never formatted into logs or errors (invariant 10).

use secrecy::SecretString;
use serde::Deserialize;

/// CalDAV Basic-auth credentials, stored as the JSON `{"username": "...", "password": "..."}`.
#[derive(Deserialize)]
pub struct CalDavCredentials {
    /// Account name (Apple ID for iCloud).
    pub username: String,
    /// Password (iCloud: app-specific password).
    pub password: SecretString,
}

impl std::fmt::Debug for CalDavCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalDavCredentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Errors reading a secret. Messages name the secret ARN, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// GetSecretValue failed.
    #[error("secret {arn}: cannot read: {reason}")]
    Unreadable {
        /// ARN of the secret.
        arn: String,
        /// AWS error text.
        reason: String,
    },
    /// The value is not the expected JSON shape.
    #[error("secret {arn}: not the expected JSON shape {expected}")]
    Malformed {
        /// ARN of the secret.
        arn: String,
        /// The shape that was expected, e.g. `{"username","password"}`.
        expected: &'static str,
    },
}

/// Read the secret `id` (name or ARN) as JSON of type `T`; `expected` names its shape in the
/// error.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    expected: &'static str,
) -> Result<T, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| SecretError::Unreadable {
            arn: id.into(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    let text = out.secret_string().unwrap_or_default();
    serde_json::from_str(text).map_err(|_| SecretError::Malformed {
        arn: id.into(),
        expected,
    })
}

/// Read CalDAV credentials from the secret `arn`.
pub async fn caldav_credentials(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<CalDavCredentials, SecretError> {
    read_json(client, arn, r#"{"username","password"}"#).await
}

/// Store CalDAV credentials as a new secret named `name`; returns its ARN.
pub async fn put_caldav_credentials(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    username: &str,
    password: &SecretString,
) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    let value = serde_json::json!({"username": username, "password": password.expose_secret()});
    put_json(client, name, &value).await
}

/// The address of an ICS feed kept in Secrets Manager (`{"url"}`): private feed URLs carry
/// a key in their path or query.
#[derive(serde::Deserialize)]
pub struct FeedSecret {
    /// The feed URL (http, https, webcal).
    pub url: SecretString,
}

/// Store a JSON secret `value` under `name`; returns its ARN.
///
/// Errors: Secrets Manager refused (the message names the secret, never its value).
pub async fn put_json(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &serde_json::Value,
) -> anyhow::Result<String> {
    let out = client
        .create_secret()
        .name(name)
        .secret_string(value.to_string())
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "create secret {name}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    Ok(out.arn().unwrap_or(name).to_string())
}

/// Replace the value of the existing secret `arn` with the JSON `value` (a new version;
/// readers get it from their next read).
///
/// Errors: Secrets Manager refused (the message names the secret, never its value).
pub async fn replace_json(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    value: &serde_json::Value,
) -> anyhow::Result<()> {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value.to_string())
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "put secret value {arn}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;
    Ok(())
}

/// Delete the secret `arn` at once (no recovery window: the user disconnected the calendar).
/// A secret that is already gone is success.
pub async fn delete(client: &aws_sdk_secretsmanager::Client, arn: &str) -> anyhow::Result<()> {
    match client
        .delete_secret()
        .secret_id(arn)
        .force_delete_without_recovery(true)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "delete secret {arn}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
        )),
    }
}
