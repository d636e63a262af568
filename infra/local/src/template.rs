//! What the local stack needs from `template.yaml`: the table definition, the
//! user pool and its client, the bucket, the HTTP routes (and which are
//! public), and each function's environment. Read from the file, never
//! restated, so the two cannot drift.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use serde_yaml::Value;

#[derive(Debug, Clone)]
pub struct Template {
    resources: serde_yaml::Mapping,
    parameters: Vec<String>,
    parameter_defaults: BTreeMap<String, String>,
    globals_env: BTreeMap<String, Value>,
    /// `Globals.Function`: what a function's own properties do not say.
    globals_function: Value,
}

/// One HTTP API route and the function behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
    pub public: bool,
}

impl Route {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Template {
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: Value = serde_yaml::from_str(text).context("template.yaml is not YAML")?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .ok_or_else(|| anyhow!("template has no Resources"))?;
        let globals_env = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .map(|vars| {
                vars.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let globals_function = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Null);
        let parameters = doc
            .get("Parameters")
            .and_then(Value::as_mapping)
            .map(|p| {
                p.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let parameter_defaults = doc
            .get("Parameters")
            .and_then(Value::as_mapping)
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| {
                        let default = resolve(v.get("Default")?, &BTreeMap::new())?;
                        Some((k.as_str()?.to_string(), default))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            resources,
            parameters,
            parameter_defaults,
            globals_env,
            globals_function,
        })
    }

    /// Logical ids and properties of the resources of one type.
    pub fn resources_of(&self, kind: &str) -> Vec<(String, Value)> {
        self.resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            // Conditional resources are optional extras (the alarm e-mail,
            // the retiring signing key of a rotation); the stack leaves
            // them out rather than evaluate conditions.
            .filter(|(_, r)| r.get("Condition").is_none())
            .filter_map(|(id, r)| {
                Some((
                    id.as_str()?.to_string(),
                    r.get("Properties").cloned().unwrap_or(Value::Null),
                ))
            })
            .collect()
    }

    /// The one resource of a type the stack needs exactly one of.
    pub fn single(&self, kind: &str) -> Result<(String, Value)> {
        let mut found = self.resources_of(kind);
        match found.len() {
            1 => Ok(found.remove(0)),
            n => bail!("template must declare exactly one {kind}, found {n}"),
        }
    }

    /// Every `HttpApi` event of every function.
    pub fn routes(&self) -> Vec<Route> {
        let mut routes = Vec::new();
        for (function, props) in self.resources_of("AWS::Serverless::Function") {
            let Some(events) = props.get("Events").and_then(Value::as_mapping) else {
                continue;
            };
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let Some(p) = event.get("Properties") else {
                    continue;
                };
                let (Some(method), Some(path)) = (
                    p.get("Method").and_then(Value::as_str),
                    p.get("Path").and_then(Value::as_str),
                ) else {
                    continue;
                };
                let public = p
                    .get("Auth")
                    .and_then(|a| a.get("Authorizer"))
                    .and_then(Value::as_str)
                    == Some("NONE");
                routes.push(Route {
                    method: method.to_ascii_uppercase(),
                    path: path.to_string(),
                    function: function.clone(),
                    public,
                });
            }
        }
        routes
    }

    /// The template's parameter names.
    pub fn parameters(&self) -> &[String] {
        &self.parameters
    }

    /// The parameters that have a default, with it.
    pub fn parameter_defaults(&self) -> &BTreeMap<String, String> {
        &self.parameter_defaults
    }

    /// The WebSocket API's routes: (route key, the function its
    /// integration invokes).
    pub fn websocket_routes(&self) -> Vec<(String, String)> {
        let mut routes = Vec::new();
        for (_, route) in self.resources_of("AWS::ApiGatewayV2::Route") {
            let Some(key) = route.get("RouteKey").and_then(Value::as_str) else {
                continue;
            };
            let integration = route.get("Target").and_then(sub_name);
            let function = integration
                .and_then(|id| self.resources.get(id.as_str()))
                .and_then(|i| i.get("Properties")?.get("IntegrationUri"))
                .and_then(sub_name);
            if let Some(function) = function {
                routes.push((key.to_string(), function));
            }
        }
        routes
    }

    /// The function of the WebSocket API's REQUEST authorizer.
    pub fn websocket_authorizer(&self) -> Option<String> {
        self.resources_of("AWS::ApiGatewayV2::Authorizer")
            .into_iter()
            .find_map(|(_, props)| sub_name(props.get("AuthorizerUri")?))
    }

    /// The logical id of every function.
    pub fn functions(&self) -> Vec<String> {
        self.resources_of("AWS::Serverless::Function")
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// The `DynamoDB` stream event of a function: its mapping's settings and
    /// the logical id of its on-failure destination.
    pub fn stream_event(&self, function: &str) -> Option<(crate::stream::Mapping, Option<String>)> {
        let p = self.stream_properties(function)?;
        let number = |key: &str| p.get(key).and_then(Value::as_u64);
        let defaults = crate::stream::Mapping::default();
        let mapping = crate::stream::Mapping {
            batch_size: number("BatchSize").map_or(defaults.batch_size, |n| n as i32),
            bisect: p
                .get("BisectBatchOnFunctionError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_retries: number("MaximumRetryAttempts").map_or(defaults.max_retries, |n| n as u32),
            max_record_age: number("MaximumRecordAgeInSeconds").map(std::time::Duration::from_secs),
            on_failure: None,
            filter: Default::default(),
        };
        let destination = p
            .get("DestinationConfig")
            .and_then(|d| d.get("OnFailure"))
            .and_then(|f| f.get("Destination"))
            .and_then(|d| match d {
                Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
                    let target = tagged.value.as_str()?;
                    Some(target.split('.').next()?.to_string())
                }
                _ => None,
            });
        Some((mapping, destination))
    }

    /// The `SQS` event of a function: the queue's logical id and the batch
    /// size (10 unless set, as for Lambda).
    pub fn queue_event(&self, function: &str) -> Option<(String, i32)> {
        let p = self.event_properties(function, "SQS")?;
        let queue = match p.get("Queue")? {
            Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
                tagged.value.as_str()?.split('.').next()?.to_string()
            }
            _ => return None,
        };
        let batch_size = p
            .get("BatchSize")
            .and_then(Value::as_u64)
            .map_or(10, |n| n as i32);
        Some((queue, batch_size))
    }

    /// The expression of a function's `Schedule` event: `rate(1 hour)`.
    pub fn schedule_event(&self, function: &str) -> Option<String> {
        self.event_properties(function, "Schedule")?
            .get("Schedule")?
            .as_str()
            .map(str::to_string)
    }

    /// A queue's `VisibilityTimeout` (SQS's default is 30 s).
    pub fn visibility_timeout(&self, queue: &str) -> i32 {
        self.resources
            .get(queue)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("VisibilityTimeout"))
            .and_then(Value::as_u64)
            .map_or(30, |n| n as i32)
    }

    /// A function's `Timeout`: its own, else the globals', else Lambda's
    /// default of 3 s.
    /// A function's property `key`, its own or from `Globals.Function`.
    fn function_setting(&self, function: &str, key: &str) -> Option<&Value> {
        self.resources
            .get(function)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get(key))
            .or_else(|| self.globals_function.get(key))
    }

    pub fn timeout(&self, function: &str) -> std::time::Duration {
        let seconds = self.function_setting(function, "Timeout");
        std::time::Duration::from_secs(seconds.and_then(Value::as_u64).unwrap_or(3))
    }

    /// A function's `MemorySize` in MB (Lambda's default, 128, if unset).
    pub fn memory_mb(&self, function: &str) -> u64 {
        self.function_setting(function, "MemorySize")
            .and_then(Value::as_u64)
            .unwrap_or(128)
    }

    /// The `FilterCriteria` of a function's `DynamoDB` event (none: every
    /// record is delivered).
    pub fn stream_filter(&self, function: &str) -> Result<crate::filter::EventFilter> {
        let patterns: Vec<String> = self
            .stream_properties(function)
            .and_then(|p| p.get("FilterCriteria"))
            .and_then(|c| c.get("Filters"))
            .and_then(Value::as_sequence)
            .map(|filters| {
                filters
                    .iter()
                    .filter_map(|f| f.get("Pattern").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        crate::filter::EventFilter::parse(&patterns)
            .with_context(|| format!("the FilterCriteria of {function}'s DynamoDB event"))
    }

    fn stream_properties(&self, function: &str) -> Option<&Value> {
        self.event_properties(function, "DynamoDB")
    }

    /// The properties of a function's first event of this type.
    fn event_properties(&self, function: &str, kind: &str) -> Option<&Value> {
        self.resources
            .get(function)?
            .get("Properties")?
            .get("Events")?
            .as_mapping()?
            .values()
            .find(|e| e.get("Type").and_then(Value::as_str) == Some(kind))?
            .get("Properties")
    }

    /// A function's identity policy: the statements of its `Policies`, with
    /// every intrinsic resolved against the stack's resources.
    pub fn policy(
        &self,
        function: &str,
        physical: &BTreeMap<String, String>,
    ) -> Result<serde_json::Value> {
        let mut statements = Vec::new();
        let policies = self
            .resources
            .get(function)
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Policies"))
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for policy in &policies {
            let Some(listed) = policy.get("Statement").and_then(Value::as_sequence) else {
                bail!(
                    "{function}: only inline policy documents are supported locally, found {policy:?}"
                );
            };
            for statement in listed {
                statements.push(resolve_json(statement, physical).ok_or_else(|| {
                    anyhow!(
                        "{function}: a policy statement names what the stack lacks: {statement:?}"
                    )
                })?);
            }
        }
        Ok(serde_json::json!({"Version": "2012-10-17", "Statement": statements}))
    }

    /// Every `S3` event of every function.
    pub fn s3_sources(&self) -> Vec<S3Source> {
        let mut sources = Vec::new();
        for (function, props) in self.resources_of("AWS::Serverless::Function") {
            let Some(events) = props.get("Events").and_then(Value::as_mapping) else {
                continue;
            };
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) != Some("S3") {
                    continue;
                }
                let Some(p) = event.get("Properties") else {
                    continue;
                };
                let events = match p.get("Events") {
                    Some(Value::String(one)) => vec![one.clone()],
                    Some(Value::Sequence(many)) => many
                        .iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect(),
                    _ => continue,
                };
                let prefix = p
                    .get("Filter")
                    .and_then(|f| f.get("S3Key"))
                    .and_then(|k| k.get("Rules"))
                    .and_then(Value::as_sequence)
                    .and_then(|rules| {
                        rules
                            .iter()
                            .find(|r| r.get("Name").and_then(Value::as_str) == Some("prefix"))
                    })
                    .and_then(|r| r.get("Value"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                sources.push(S3Source {
                    function: function.clone(),
                    events,
                    prefix,
                });
            }
        }
        sources
    }

    /// A function's environment: globals overlaid with its own variables,
    /// `!Ref`s resolved through `physical` (logical id -> name or id).
    pub fn environment(
        &self,
        function: &str,
        physical: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut vars = self.globals_env.clone();
        if let Some(own) = self
            .resources
            .get(function)
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
        {
            for (k, v) in own {
                if let Some(k) = k.as_str() {
                    vars.insert(k.to_string(), v.clone());
                }
            }
        }
        vars.into_iter()
            .filter_map(|(name, value)| Some((name, resolve(&value, physical)?)))
            .collect()
    }
}

/// A scalar, a `!Ref` or a `!Sub` over resources the stack created and the
/// pseudo parameters (`AWS::StackName`, ... in `physical` too). Anything
/// else (`!GetAtt`) has no local meaning.
pub fn resolve(value: &Value, physical: &BTreeMap<String, String>) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            physical.get(tagged.value.as_str()?).cloned()
        }
        Value::Tagged(tagged) if tagged.tag == "Sub" => {
            substitute(tagged.value.as_str()?, physical)
        }
        // `!GetAtt Table.Arn`: the stack records attributes as `Table.Arn`.
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
            physical.get(tagged.value.as_str()?).cloned()
        }
        Value::Mapping(map) => physical.get(map.get("Ref")?.as_str()?).cloned(),
        _ => None,
    }
}

/// A value of the template as JSON, every intrinsic resolved; None if one
/// cannot be (it names something the stack did not create).
pub fn resolve_json(
    value: &Value,
    physical: &BTreeMap<String, String>,
) -> Option<serde_json::Value> {
    Some(match value {
        Value::Sequence(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|item| resolve_json(item, physical))
                .collect::<Option<_>>()?,
        ),
        Value::Mapping(map) if map.get("Ref").is_none() => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| Some((k.as_str()?.to_string(), resolve_json(v, physical)?)))
                .collect::<Option<_>>()?,
        ),
        Value::Null => serde_json::Value::Null,
        other => serde_json::Value::String(resolve(other, physical)?),
    })
}

/// The first resource a `!Sub` names (`${Name}` or `${Name.Attr}`; pseudo
/// parameters such as `${AWS::Region}` are not resources).
fn sub_name(value: &Value) -> Option<String> {
    let Value::Tagged(tagged) = value else {
        return None;
    };
    let mut rest = tagged.value.as_str()?;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}')? + start;
        let name = &rest[start + 2..end];
        if !name.starts_with("AWS::") {
            return Some(name.split('.').next()?.to_string());
        }
        rest = &rest[end + 1..];
    }
    None
}

/// `${Name}` replaced by its value; None if any name is unknown.
fn substitute(text: &str, physical: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        out.push_str(physical.get(&rest[start + 2..end])?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// An S3 event source: which function, for which events and key prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Source {
    pub function: String,
    pub events: Vec<String>,
    pub prefix: Option<String>,
}

/// `Properties.X` as a string list (e.g. `UsernameAttributes`).
pub fn strings(props: &Value, key: &str) -> Vec<String> {
    props
        .get(key)
        .and_then(Value::as_sequence)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_template() -> Template {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        Template::load(&path).unwrap()
    }

    #[test]
    fn reads_routes_and_public_flags() {
        let routes = project_template().routes();
        let find = |key: &str| routes.iter().find(|r| r.key() == key).cloned();
        let sign_up = find("POST /auth/sign-up").expect("sign-up route");
        assert!(sign_up.public);
        assert_eq!(sign_up.function, "AuthFunction");
        assert!(!find("GET /me").unwrap().public);
        assert!(!find("POST /auth/sign-out").unwrap().public);
        assert!(find("GET /health").unwrap().public);
    }

    #[test]
    fn memory_and_timeout_come_from_the_function_or_the_globals() {
        let template = project_template();
        assert_eq!(template.memory_mb("ResizeFunction"), 1024);
        assert_eq!(template.memory_mb("SyncFunction"), 256);
        assert_eq!(template.timeout("ResizeFunction").as_secs(), 60);
        assert_eq!(template.timeout("AuthFunction").as_secs(), 10);
    }

    /// Every route of the template is in the OpenAPI document, and every
    /// operation of the document is a route of the template.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_mapping().unwrap() {
            for (method, operation) in item.as_mapping().unwrap() {
                let method = method.as_str().unwrap().to_ascii_uppercase();
                let public = operation
                    .get("security")
                    .and_then(Value::as_sequence)
                    .is_some_and(|s| s.is_empty());
                documented.insert((format!("{method} {}", path.as_str().unwrap()), public));
            }
        }
        let routed: std::collections::BTreeSet<(String, bool)> = project_template()
            .routes()
            .iter()
            .map(|r| (r.key(), r.public))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn the_table_has_the_designed_keys_feed_stream_and_ttl() {
        let (_, table) = project_template().single("AWS::DynamoDB::Table").unwrap();
        let text = serde_yaml::to_string(&table).unwrap();
        for needle in [
            "PK",
            "SK",
            "Feed",
            "feedVer",
            "NEW_AND_OLD_IMAGES",
            "expiresAt",
        ] {
            assert!(text.contains(needle), "{needle} missing from the table");
        }
    }

    #[test]
    fn the_stream_mapping_is_read_from_the_template() {
        let (mapping, destination) = project_template().stream_event("NotifyFunction").unwrap();
        assert_eq!(mapping.batch_size, 100);
        assert!(mapping.bisect);
        assert_eq!(mapping.max_retries, 5);
        assert_eq!(
            mapping.max_record_age,
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(destination.as_deref(), Some("FailedEventsQueue"));
        assert!(project_template().stream_event("AuthFunction").is_none());
    }

    /// The template's filters name item kinds by their sort key prefixes:
    /// checked against the keys the store writes, so renaming a prefix in
    /// `shared::keys` cannot silently starve a consumer.
    #[test]
    fn the_stream_filters_admit_what_each_consumer_acts_on_and_nothing_else() {
        use shared::keys::ItemKey;
        use shared::model::ids::{MediaId, Partition, SpaceId, UserId};

        let template = project_template();
        let poke = template.stream_filter("PokeFunction").unwrap();
        let notify = template.stream_filter("NotifyFunction").unwrap();
        let user = UserId::parse("u").unwrap();
        let space = SpaceId::parse("s").unwrap();
        let record = |event: &str, key: &ItemKey| {
            serde_json::json!({"eventName": event, "dynamodb": {"Keys": {
                "PK": {"S": key.pk()}, "SK": {"S": key.sk()}}}})
        };
        let sync = ItemKey::Record {
            partition: Partition::Space(space.clone()),
            collection: "notes".into(),
            record_id: "n1".into(),
        };
        let media = ItemKey::Media {
            partition: Partition::User(user.clone()),
            media_id: MediaId::parse("m1").unwrap(),
        };
        let membership = ItemKey::Membership {
            user: user.clone(),
            space,
        };
        let connection = ItemKey::Connection {
            user: user.clone(),
            connection_id: "c=".into(),
        };
        let presence = ItemKey::Presence { user };
        for (key, poked, notified) in [
            (&sync, true, true),
            (&media, true, true),
            (&membership, true, false),
            (&connection, false, false),
            (&presence, false, false),
        ] {
            for event in ["INSERT", "MODIFY"] {
                let change = record(event, key);
                assert_eq!(poke.admits(&change), poked, "poke, {change}");
                assert_eq!(notify.admits(&change), notified, "notify, {change}");
            }
            assert!(!poke.admits(&record("REMOVE", key)));
            assert!(!notify.admits(&record("REMOVE", key)));
        }
    }

    #[test]
    fn environment_resolves_refs_and_subs() {
        let physical = BTreeMap::from([
            ("Table".to_string(), "t-1".to_string()),
            ("UserPool".to_string(), "pool-1".to_string()),
            ("UserPoolClient".to_string(), "client-1".to_string()),
            ("AWS::StackName".to_string(), "dev".to_string()),
            ("AWS::AccountId".to_string(), "123456789012".to_string()),
            ("AWS::Region".to_string(), "us-east-1".to_string()),
        ]);
        let env = project_template().environment("AuthFunction", &physical);
        assert_eq!(env["TABLE_NAME"], "t-1");
        assert_eq!(env["USER_POOL_ID"], "pool-1");
        assert_eq!(env["USER_POOL_CLIENT_ID"], "client-1");
        assert_eq!(env["MEDIA_BUCKET"], "dev-media-123456789012-us-east-1");
        assert_eq!(substitute("${Missing}", &physical), None);
    }

    #[test]
    fn reads_the_upload_event_source() {
        let sources = project_template().s3_sources();
        assert_eq!(
            sources,
            vec![S3Source {
                function: "ResizeFunction".into(),
                events: vec!["s3:ObjectCreated:*".into()],
                prefix: Some("uploads/".into()),
            }]
        );
    }
}
