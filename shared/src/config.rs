//! Names of the AWS resources, derived from the stack name as `infra/template.yaml` does,
//! and the shared AWS / HTTP clients.

/// Resource names of one calsync stack. Tables and queues are named
/// `<stack>-links`, `<stack>-sync-jobs.fifo`, ... (see `infra/template.yaml`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Links table (one item per member calendar).
    pub links_table: String,
    /// Hub events table (group_id, uid).
    pub events_table: String,
    /// Mappings table (link_id, uid).
    pub mappings_table: String,
    /// Cursors table (link_id): syncToken / deltaLink / sync-token / ctag / ETag.
    pub cursors_table: String,
    /// Leases table (link_id), TTL `expires_at`.
    pub leases_table: String,
    /// Run records table (link_id, run_id), TTL `expires_at`.
    pub runs_table: String,
    /// FIFO queue of pull jobs, resolved by name with GetQueueUrl.
    pub sync_jobs_queue: String,
    /// FIFO queue of push (sync-back) jobs.
    pub sync_back_queue: String,
    /// Push channels table (channel_id): Google channels, Graph subscriptions
    /// ([`crate::push`]).
    pub channels_table: String,
    /// Pending OAuth consents table (state), TTL `expires_at`, see [`crate::connect`].
    pub oauth_states_table: String,
    /// Sync groups table (group_id; GSI `user-index`), see [`crate::model::Group`].
    pub groups_table: String,
    /// Idempotency-Key records of the API (key), TTL `expires_at` (24 h).
    pub idempotency_table: String,
    /// The stack name: prefix of every resource and secret name.
    pub stack: String,
    /// EventBridge bus of the application's notifications (`<stack>-bus`, [`crate::notify`]).
    pub event_bus: String,
    /// Public base URL of the webhook receiver (`CALSYNC_WEBHOOK_URL`, the HTTP API's URL):
    /// providers deliver to `<base>/webhooks/<slug>` ([`Config::webhook_url`]); `None`: no
    /// push channels, schedule only.
    pub webhook_base: Option<String>,
    /// Seconds a push run may write before it stops after the current chunk and queues its
    /// own continuation (`CALSYNC_RUN_BUDGET_SECS`, default 420: inside the sync-back
    /// Lambda's 600 s timeout, so a large first sync paced by a provider quota finishes over
    /// several runs instead of timing out).
    pub run_budget_secs: u64,
    /// Seconds a job waits for a link's lease that another job holds before its message goes
    /// back to the queue (`CALSYNC_LEASE_WAIT_SECS`, default 15; see
    /// `Store::acquire_lease_waiting`).
    pub lease_wait_secs: u64,
    /// S3 bucket of event bodies too big for a DynamoDB item (`CALSYNC_BODIES_BUCKET`, the
    /// template's `BodiesBucket`, see [`crate::store::Bodies`]); `None`: such an event is
    /// refused with a clear error.
    pub bodies_bucket: Option<String>,
}

impl Config {
    /// Names for the stack called `stack`.
    pub fn for_stack(stack: &str) -> Self {
        Self {
            links_table: format!("{stack}-links"),
            events_table: format!("{stack}-events"),
            mappings_table: format!("{stack}-mappings"),
            cursors_table: format!("{stack}-cursors"),
            leases_table: format!("{stack}-leases"),
            runs_table: format!("{stack}-runs"),
            sync_jobs_queue: format!("{stack}-sync-jobs.fifo"),
            sync_back_queue: format!("{stack}-sync-back.fifo"),
            channels_table: format!("{stack}-channels"),
            oauth_states_table: format!("{stack}-oauth-states"),
            groups_table: format!("{stack}-groups"),
            idempotency_table: format!("{stack}-idempotency"),
            stack: stack.to_string(),
            event_bus: format!("{stack}-bus"),
            webhook_base: None,
            run_budget_secs: 420,
            lease_wait_secs: 15,
            bodies_bucket: None,
        }
    }

    /// Names for the stack in `CALSYNC_STACK` (default `calsync`).
    pub fn from_env() -> Self {
        let mut c =
            Self::for_stack(&std::env::var("CALSYNC_STACK").unwrap_or_else(|_| "calsync".into()));
        c.webhook_base = std::env::var("CALSYNC_WEBHOOK_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|u| webhook_base(&u));
        c.bodies_bucket = std::env::var("CALSYNC_BODIES_BUCKET")
            .ok()
            .filter(|b| !b.is_empty());
        if let Some(b) = std::env::var("CALSYNC_RUN_BUDGET_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            c.run_budget_secs = b;
        }
        if let Some(w) = std::env::var("CALSYNC_LEASE_WAIT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            c.lease_wait_secs = w;
        }
        c
    }
}

impl Config {
    /// Where the provider `slug` delivers notifications: `<base>/webhooks/<slug>`.
    pub fn webhook_url(&self, slug: &str) -> Option<String> {
        self.webhook_base
            .as_ref()
            .map(|b| format!("{}/webhooks/{slug}", b.trim_end_matches('/')))
    }
}

/// The base of a webhook URL: `u` less a trailing `/webhooks/<slug>` (the form of
/// `CALSYNC_WEBHOOK_URL` before push became provider-neutral) and `/`.
pub fn webhook_base(u: &str) -> String {
    let u = u.trim_end_matches('/');
    match u.rsplit_once("/webhooks/") {
        Some((base, slug)) if !slug.contains('/') => base.to_string(),
        _ => u.to_string(),
    }
}

/// The clients every function needs, built once per Lambda container.
#[derive(Clone)]
pub struct Clients {
    /// DynamoDB (links, events, mappings, cursors, leases, runs).
    pub ddb: aws_sdk_dynamodb::Client,
    /// SQS (sync-jobs, sync-back).
    pub sqs: aws_sdk_sqs::Client,
    /// Secrets Manager (provider credentials).
    pub secrets: aws_sdk_secretsmanager::Client,
    /// EventBridge (notifications to the application).
    pub events: aws_sdk_eventbridge::Client,
    /// S3 (event bodies too big for DynamoDB).
    pub s3: aws_sdk_s3::Client,
    /// HTTP client for providers and user-supplied addresses: 30 s timeout, public addresses
    /// only (plus `CALSYNC_ALLOW_NETS`), at most 3 checked redirects ([`crate::net`]).
    pub http: reqwest::Client,
    /// What the AWS clients above did so far ([`crate::metrics`]).
    pub aws_calls: crate::metrics::AwsCallCounter,
    /// SQS queue URLs resolved so far ([`crate::queue::Queues`]).
    pub queue_urls: crate::queue::QueueUrls,
}

/// The AWS SDK configuration of calsync's clients: the latest behaviour version, the SDK's
/// HTTP client on ring ([`crate::net::aws_http_client`]; the SDK is built without a default
/// client), `credentials`, and the endpoint and region given. Retries, timeouts, the
/// identity cache and the sleep come from each service client's defaults for that
/// behaviour version (standard retries, 3.1 s connect timeout).
///
/// Built by hand rather than with `aws_config::ConfigLoader::load`, which links the whole
/// default credentials and region chains (web identity and STS, profile files, ECS, IMDS)
/// into every function whether it uses them or not (docs/performance.md, "AutoSync without
/// the providers").
pub fn sdk_config(
    endpoint_url: Option<&str>,
    region: Option<&str>,
    credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
) -> aws_config::SdkConfig {
    let mut b = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .http_client(crate::net::aws_http_client())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .region(region.map(|r| aws_config::Region::new(r.to_string())));
    if let Some(url) = endpoint_url {
        b = b.endpoint_url(url);
    }
    b.build()
}

/// [`sdk_config`] from the environment a Lambda function gets: credentials from
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (read at each
/// signing), region from `AWS_REGION` (else `AWS_DEFAULT_REGION`), endpoint from
/// `AWS_ENDPOINT_URL` (the local stack's moto) when set. Profile files, `AWS_PROFILE`,
/// `AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS` and the per-service `AWS_ENDPOINT_URL_<SERVICE>`
/// are not read. Without a region the first AWS call fails with the SDK's "no region"
/// error.
pub fn sdk_config_from_env() -> aws_config::SdkConfig {
    sdk_config_from(|k| std::env::var(k).ok())
}

/// [`sdk_config_from_env`] with `var` for the environment (an empty value counts as unset).
fn sdk_config_from(var: impl Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    let var = |k: &str| var(k).filter(|v| !v.is_empty());
    sdk_config(
        var("AWS_ENDPOINT_URL").as_deref(),
        var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .as_deref(),
        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
    )
}

impl Clients {
    /// Clients from the standard AWS environment (`AWS_ENDPOINT_URL`, region, credentials).
    pub fn from_env() -> Self {
        Self::from_sdk_config(&sdk_config_from_env())
    }

    /// Clients from an explicit SDK configuration, outbound HTTP under the policy of the
    /// environment ([`crate::net::NetPolicy::from_env`]).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self::with_net_policy(sdk, crate::net::NetPolicy::from_env())
    }

    /// Clients from an explicit SDK configuration and outbound address policy.
    pub fn with_net_policy(sdk: &aws_config::SdkConfig, policy: crate::net::NetPolicy) -> Self {
        let http = crate::net::guarded_client(policy);
        let counter = crate::metrics::AwsCallCounter::default();
        Self {
            ddb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            events: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(sdk)
                    .interceptor(counter.clone())
                    .build(),
            ),
            // Behind an endpoint override (moto at AWS_ENDPOINT_URL) the bucket goes in the
            // path; AWS itself gets virtual-hosted addressing.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(sdk.endpoint_url().is_some())
                    .interceptor(counter.clone())
                    .build(),
            ),
            http,
            aws_calls: counter,
            queue_urls: Default::default(),
        }
    }
}

/// Everything a handler needs: names and clients.
#[derive(Clone)]
pub struct Ctx {
    /// Resource names.
    pub config: Config,
    /// AWS and HTTP clients.
    pub clients: Clients,
}

impl Ctx {
    /// Context from the environment.
    pub fn from_env() -> Self {
        Self {
            config: Config::from_env(),
            clients: Clients::from_env(),
        }
    }

    /// The DynamoDB state store.
    pub fn store(&self) -> crate::store::Store {
        let store = crate::store::Store::new(self.clients.ddb.clone(), self.config.clone());
        match &self.config.bodies_bucket {
            Some(b) => store.with_bodies(crate::store::Bodies::new(self.clients.s3.clone(), b)),
            None => store,
        }
    }

    /// The job queues.
    pub fn queues(&self) -> crate::queue::Queues {
        crate::queue::Queues::new(
            self.clients.sqs.clone(),
            self.config.clone(),
            self.clients.queue_urls.clone(),
        )
    }
}

/// Current time in whole seconds since the Unix epoch (UTC).
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Current time in milliseconds since the Unix epoch (UTC).
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_urls_per_provider() {
        for (env, want) in [
            ("https://h/prod", "https://h/prod"),
            ("https://h/prod/", "https://h/prod"),
            ("https://h/webhooks/google", "https://h"),
            ("https://h/x/webhooks/google/", "https://h/x"),
        ] {
            assert_eq!(super::webhook_base(env), want, "{env}");
        }
        let mut c = super::Config::for_stack("s");
        assert_eq!(c.webhook_url("google"), None);
        c.webhook_base = Some("https://h/prod".into());
        assert_eq!(
            c.webhook_url("outlook").as_deref(),
            Some("https://h/prod/webhooks/outlook")
        );
    }

    #[test]
    fn the_sdk_configuration_comes_from_the_lambda_environment() {
        const MOTO: &str = "http://127.0.0.1:4566";
        type Env = &'static [(&'static str, &'static str)];
        // (environment, region, endpoint)
        let cases: [(Env, Option<&str>, Option<&str>); 5] = [
            (
                &[
                    ("AWS_REGION", "eu-west-1"),
                    ("AWS_DEFAULT_REGION", "us-east-1"),
                ],
                Some("eu-west-1"),
                None,
            ),
            (
                &[("AWS_DEFAULT_REGION", "us-east-2")],
                Some("us-east-2"),
                None,
            ),
            (
                &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "us-east-2")],
                Some("us-east-2"),
                None,
            ),
            (
                &[("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", MOTO)],
                Some("us-east-1"),
                Some(MOTO),
            ),
            (&[("AWS_ENDPOINT_URL", "")], None, None),
        ];
        for (env, region, endpoint) in cases {
            let sdk = super::sdk_config_from(|k| {
                env.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            });
            assert_eq!(sdk.region().map(|r| r.as_ref()), region, "{env:?}");
            assert_eq!(sdk.endpoint_url(), endpoint, "{env:?}");
            assert!(sdk.credentials_provider().is_some(), "{env:?}");
            assert!(sdk.http_client().is_some(), "{env:?}");
            assert!(sdk.behavior_version().is_some(), "{env:?}");
        }
    }
}
