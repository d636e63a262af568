//! Creates the template's resources in the emulator, named after the stack so
//! that several stacks (parallel tests) share one emulator. What already
//! exists under the stack's names (an emulator restored from saved state)
//! is taken as it is: the same user pool, app client and signing key, so
//! tokens and signed URLs handed out before a restart stay good.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use aws_config::SdkConfig;
use aws_sdk_cognitoidentityprovider::types::{
    ExplicitAuthFlowsType, PasswordPolicyType, UserPoolPolicyType, UsernameAttributeType,
    VerifiedAttributeType,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification,
};
use serde_yaml::Value;
use sha2::{Digest, Sha256};

use shared::media::cdn::{self, KeyGroup};

use crate::template::{Template, strings};

/// Physical names and ids of what was created.
#[derive(Debug, Clone)]
pub struct Resources {
    pub table_name: String,
    pub bucket: String,
    /// (function, queue URL) for each S3 event source.
    pub upload_queues: Vec<(String, String)>,
    /// Logical id -> (URL, ARN) of each `AWS::SQS::Queue` of the template.
    pub queues: BTreeMap<String, (String, String)>,
    pub user_pool_id: String,
    pub user_pool_client_id: String,
    /// The distribution's trusted keys (the template's `MediaKeyGroup`).
    pub media_key_group: KeyGroup,
    /// The key the functions sign media URLs with (the console signs
    /// with it too).
    pub media_signing_key: MediaSigningKey,
    /// Logical id -> physical name/id, to resolve `!Ref` in environments.
    pub physical: BTreeMap<String, String>,
}

/// One key pair of the key group: its id and private half.
#[derive(Clone)]
pub struct MediaSigningKey {
    pub key_pair_id: String,
    pub private_pem: String,
}

impl std::fmt::Debug for MediaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSigningKey")
            .field("key_pair_id", &self.key_pair_id)
            .finish_non_exhaustive()
    }
}

/// The emulator's account.
pub const ACCOUNT_ID: &str = "123456789012";
/// The WebSocket API's id and stage as the local gateway calls them.
pub const WEBSOCKET_API_ID: &str = "localws";
pub const WEBSOCKET_STAGE: &str = "live";

pub async fn provision(sdk: &SdkConfig, template: &Template, stack: &str) -> Result<Resources> {
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let mut physical = BTreeMap::from([
        ("AWS::StackName".to_string(), stack.to_string()),
        ("AWS::AccountId".to_string(), ACCOUNT_ID.to_string()),
        ("AWS::Region".to_string(), region.clone()),
        ("AWS::Partition".to_string(), "aws".to_string()),
    ]);

    // Parameters keep their defaults unless the stack sets them below.
    for (name, default) in template.parameter_defaults() {
        physical.insert(name.clone(), default.clone());
    }

    let (table_id, table) = template.single("AWS::DynamoDB::Table")?;
    let table_name = format!("{stack}-{}", table_id.to_lowercase());
    create_table(sdk, &table, &table_name).await?;
    physical.insert(
        format!("{table_id}.Arn"),
        format!("arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{table_name}"),
    );
    physical.insert(table_id, table_name.clone());

    let (bucket_id, bucket_props) = template.single("AWS::S3::Bucket")?;
    let bucket = bucket_props
        .get("BucketName")
        .and_then(|name| crate::template::resolve(name, &physical))
        .unwrap_or_else(|| format!("{stack}-{}", bucket_id.to_lowercase()))
        .to_lowercase();
    aws_sdk_s3::Client::new(sdk)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("creating the media bucket")?;
    physical.insert(format!("{bucket_id}.Arn"), format!("arn:aws:s3:::{bucket}"));
    physical.insert(bucket_id, bucket.clone());

    // S3 event sources: notifications go to a queue the stack polls, as the
    // emulator cannot invoke a function.
    let mut upload_queues = Vec::new();
    for source in template.s3_sources() {
        let queue = format!("{stack}-{}", source.function.to_lowercase());
        upload_queues.push((
            source.function.clone(),
            create_notification_queue(sdk, &bucket, &queue, &source, &region).await?,
        ));
    }

    // The template's own queues (the failed-events destination).
    let mut queues = BTreeMap::new();
    for (logical, _) in template.resources_of("AWS::SQS::Queue") {
        let name = format!("{stack}-{}", logical.to_lowercase());
        let url = aws_sdk_sqs::Client::new(sdk)
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .with_context(|| format!("creating the queue {logical}"))?
            .queue_url
            .ok_or_else(|| anyhow!("the emulator returned no queue URL"))?;
        let arn = format!("arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}");
        physical.insert(logical.clone(), url.clone());
        physical.insert(format!("{logical}.Arn"), arn.clone());
        physical.insert(format!("{logical}.QueueName"), name);
        queues.insert(logical, (url, arn));
    }
    // Redrive policies once every queue exists (they name one another).
    for (logical, properties) in template.resources_of("AWS::SQS::Queue") {
        let Some(policy) = properties.get("RedrivePolicy") else {
            continue;
        };
        let policy = crate::template::resolve_json(policy, &physical)
            .with_context(|| format!("the RedrivePolicy of {logical}"))?;
        aws_sdk_sqs::Client::new(sdk)
            .set_queue_attributes()
            .queue_url(&queues[&logical].0)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                policy.to_string(),
            )
            .send()
            .await
            .with_context(|| format!("setting the RedrivePolicy of {logical}"))?;
    }

    // SNS platform applications stand in for the ARNs the template takes as
    // parameters (APNs/FCM credentials live outside the template).
    for parameter in template.parameters() {
        let platform = if parameter.starts_with("Apns") {
            "APNS_SANDBOX"
        } else if parameter.starts_with("Fcm") {
            "GCM"
        } else {
            continue;
        };
        let name = format!("{stack}-{platform}");
        let sns = aws_sdk_sns::Client::new(sdk);
        let existing = sns
            .list_platform_applications()
            .send()
            .await
            .context("listing platform applications")?
            .platform_applications
            .unwrap_or_default()
            .into_iter()
            .filter_map(|application| application.platform_application_arn)
            .find(|arn| arn.ends_with(&format!("/{platform}/{name}")));
        if let Some(arn) = existing {
            physical.insert(parameter.clone(), arn);
            continue;
        }
        let arn = sns
            .create_platform_application()
            .name(name)
            .platform(platform)
            .attributes("PlatformCredential", "local")
            .send()
            .await
            .context("creating a platform application")?
            .platform_application_arn
            .ok_or_else(|| anyhow!("the emulator returned no platform application ARN"))?;
        physical.insert(parameter.clone(), arn);
    }

    let (pool_id_logical, pool) = template.single("AWS::Cognito::UserPool")?;
    let (client_logical, client) = template.single("AWS::Cognito::UserPoolClient")?;
    let (user_pool_id, user_pool_client_id) =
        create_user_pool(sdk, &pool, &client, &format!("{stack}-users")).await?;
    physical.insert(
        format!("{pool_id_logical}.Arn"),
        format!("arn:aws:cognito-idp:{region}:{ACCOUNT_ID}:userpool/{user_pool_id}"),
    );
    physical.insert(pool_id_logical, user_pool_id.clone());
    physical.insert(client_logical, user_pool_client_id.clone());

    let (media_key_group, media_signing_key) =
        create_media_signing_key(sdk, template, stack, &mut physical).await?;

    // The WebSocket API is the local gateway's (`websocket.rs`).
    let (websocket_api, _) = template.single("AWS::ApiGatewayV2::Api")?;
    let (websocket_stage, _) = template.single("AWS::ApiGatewayV2::Stage")?;
    physical.insert(websocket_api, WEBSOCKET_API_ID.into());
    physical.insert(websocket_stage, WEBSOCKET_STAGE.into());

    Ok(Resources {
        media_key_group,
        media_signing_key,
        table_name,
        bucket,
        upload_queues,
        queues,
        user_pool_id,
        user_pool_client_id,
        physical,
    })
}

/// The operator's part of a deployment, done for the stack: a key pair
/// whose private half is an SSM SecureString (named per stack, so stacks
/// can share one emulator) and whose public half is the template's
/// `AWS::CloudFront::PublicKey`, alone in the key group.
async fn create_media_signing_key(
    sdk: &SdkConfig,
    template: &Template,
    stack: &str,
    physical: &mut BTreeMap<String, String>,
) -> Result<(KeyGroup, MediaSigningKey)> {
    let (key_logical, _) = template.single("AWS::CloudFront::PublicKey")?;
    let parameter = format!("/{stack}/media-signing-key");
    let private_pem = shared::adapters::parameters::secure_string_or_make(sdk, &parameter, || {
        cdn::generate_key_pair().0
    })
    .await
    .context("storing the media signing key in SSM")?;
    let public_pem = cdn::public_key_of(&private_pem)?;
    // Named after the key itself, so the same key keeps its id.
    let digest = hex_upper(&Sha256::digest(public_pem.as_bytes()));
    let key_id = format!("K{}", &digest[..13]);
    let mut group = KeyGroup::default();
    group.insert(&key_id, &public_pem)?;
    physical.insert("MediaSigningKeyParameter".into(), parameter);
    physical.insert(key_logical, key_id.clone());
    Ok((
        group,
        MediaSigningKey {
            key_pair_id: key_id,
            private_pem,
        },
    ))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn str_of<'a>(value: &'a Value, key: &str) -> Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("template: {key} missing"))
}

fn projection(index: &Value) -> Projection {
    let kind = index
        .get("Projection")
        .and_then(|p| p.get("ProjectionType"))
        .and_then(Value::as_str)
        .unwrap_or("ALL");
    Projection::builder()
        .projection_type(ProjectionType::from(kind))
        .build()
}

fn key_schema(value: &Value) -> Result<Vec<KeySchemaElement>> {
    value
        .get("KeySchema")
        .and_then(Value::as_sequence)
        .ok_or_else(|| anyhow!("template: KeySchema missing"))?
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(str_of(k, "AttributeName")?)
                .key_type(KeyType::from(str_of(k, "KeyType")?))
                .build()?)
        })
        .collect()
}

/// The names of a table's indexes, as the template declares them.
fn index_names(table: &Value) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for kind in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
        for index in table
            .get(kind)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            names.push(str_of(index, "IndexName")?.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The table, or the one already there if it has the template's indexes.
async fn create_table(sdk: &SdkConfig, table: &Value, name: &str) -> Result<()> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    if let Some(description) = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .ok()
        .and_then(|existing| existing.table)
    {
        let mut names: Vec<String> = description
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name.clone())
            .chain(
                description
                    .local_secondary_indexes()
                    .iter()
                    .filter_map(|i| i.index_name.clone()),
            )
            .collect();
        names.sort();
        let wanted = index_names(table)?;
        anyhow::ensure!(
            names == wanted,
            "the saved table {name} has the indexes {names:?}, the template {wanted:?}: \
             start with empty state (scripts/dev --fresh)"
        );
        return Ok(());
    }
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(table)?));
    for attribute in table
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_of(attribute, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_of(
                    attribute,
                    "AttributeType",
                )?))
                .build()?,
        );
    }
    for index in table
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_of(index, "IndexName")?)
                .set_key_schema(Some(key_schema(index)?))
                .projection(projection(index))
                .build()?,
        );
    }
    for index in table
        .get("LocalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        create = create.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(str_of(index, "IndexName")?)
                .set_key_schema(Some(key_schema(index)?))
                .projection(projection(index))
                .build()?,
        );
    }
    if let Some(view) = table
        .get("StreamSpecification")
        .and_then(|s| s.get("StreamViewType"))
        .and_then(Value::as_str)
    {
        create = create.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view))
                .build()?,
        );
    }
    create.send().await.context("creating the table")?;

    if let Some(ttl) = table.get("TimeToLiveSpecification") {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(str_of(ttl, "AttributeName")?)
                    .enabled(ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(true))
                    .build()?,
            )
            .send()
            .await
            .context("enabling TTL")?;
    }
    Ok(())
}

async fn create_user_pool(
    sdk: &SdkConfig,
    pool: &Value,
    client: &Value,
    name: &str,
) -> Result<(String, String)> {
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(sdk);
    if let Some(existing) = existing_user_pool(&cognito, name).await? {
        return Ok(existing);
    }
    let mut create = cognito.create_user_pool().pool_name(name);
    if let Some(policy) = pool.get("Policies").and_then(|p| p.get("PasswordPolicy")) {
        let flag = |key: &str| policy.get(key).and_then(Value::as_bool).unwrap_or(false);
        create = create.policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .minimum_length(
                            policy
                                .get("MinimumLength")
                                .and_then(Value::as_i64)
                                .unwrap_or(8) as i32,
                        )
                        .require_lowercase(flag("RequireLowercase"))
                        .require_uppercase(flag("RequireUppercase"))
                        .require_numbers(flag("RequireNumbers"))
                        .require_symbols(flag("RequireSymbols"))
                        .build(),
                )
                .build(),
        );
    }
    for attribute in strings(pool, "UsernameAttributes") {
        create = create.username_attributes(UsernameAttributeType::from(attribute.as_str()));
    }
    for attribute in strings(pool, "AutoVerifiedAttributes") {
        create = create.auto_verified_attributes(VerifiedAttributeType::from(attribute.as_str()));
    }
    let pool_id = create
        .send()
        .await
        .context("creating the user pool")?
        .user_pool
        .and_then(|p| p.id)
        .ok_or_else(|| anyhow!("the emulator returned no user pool id"))?;

    let mut create_client = cognito
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name(format!("{name}-app"))
        .generate_secret(
            client
                .get("GenerateSecret")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        );
    for flow in strings(client, "ExplicitAuthFlows") {
        create_client =
            create_client.explicit_auth_flows(ExplicitAuthFlowsType::from(flow.as_str()));
    }
    let client_id = create_client
        .send()
        .await
        .context("creating the user pool client")?
        .user_pool_client
        .and_then(|c| c.client_id)
        .ok_or_else(|| anyhow!("the emulator returned no client id"))?;
    Ok((pool_id, client_id))
}

/// The pool named `name` and its app client, if the emulator has them.
async fn existing_user_pool(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    name: &str,
) -> Result<Option<(String, String)>> {
    let pools = cognito
        .list_user_pools()
        .max_results(60)
        .send()
        .await
        .context("listing user pools")?;
    let Some(pool_id) = pools
        .user_pools()
        .iter()
        .find(|pool| pool.name() == Some(name))
        .and_then(|pool| pool.id.clone())
    else {
        return Ok(None);
    };
    let clients = cognito
        .list_user_pool_clients()
        .user_pool_id(&pool_id)
        .send()
        .await
        .context("listing the user pool's clients")?;
    let client_name = format!("{name}-app");
    Ok(clients
        .user_pool_clients()
        .iter()
        .find(|client| client.client_name() == Some(client_name.as_str()))
        .and_then(|client| client.client_id.clone())
        .map(|client_id| (pool_id, client_id)))
}

async fn create_notification_queue(
    sdk: &SdkConfig,
    bucket: &str,
    queue: &str,
    source: &crate::template::S3Source,
    region: &str,
) -> Result<String> {
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    let url = aws_sdk_sqs::Client::new(sdk)
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .context("creating the upload queue")?
        .queue_url
        .ok_or_else(|| anyhow!("the emulator returned no queue URL"))?;
    let mut configuration = QueueConfiguration::builder()
        .queue_arn(format!("arn:aws:sqs:{region}:{ACCOUNT_ID}:{queue}"))
        .set_events(Some(
            source
                .events
                .iter()
                .map(|e| Event::from(e.as_str()))
                .collect(),
        ));
    if let Some(prefix) = &source.prefix {
        configuration = configuration.filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(
                            FilterRule::builder()
                                .name(FilterRuleName::Prefix)
                                .value(prefix)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        );
    }
    aws_sdk_s3::Client::new(sdk)
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(configuration.build()?)
                .build(),
        )
        .send()
        .await
        .context("configuring the bucket notification")?;
    Ok(url)
}
