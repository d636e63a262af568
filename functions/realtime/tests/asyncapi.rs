//! The protocol document (`infra/asyncapi.yaml`) and the messages the code
//! sends and takes cannot drift: every message the server sends serializes
//! to exactly the documented properties, and the documented ping parses.

use serde_json::{Value, json};
use shared::model::connection::{ClientMessage, ServerMessage};

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/asyncapi.yaml");
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(yaml).unwrap()
}

#[test]
fn every_message_matches_its_documented_schema() {
    let doc = document();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let sent = [
        ServerMessage::Poke {
            cursor: Some("djI6NDI".into()),
            space_id: None,
        },
        ServerMessage::Poke {
            cursor: None,
            space_id: shared::model::ids::SpaceId::parse("s1").ok(),
        },
        ServerMessage::Media {
            media_id: "0190a0b0-0000-7000-8000-000000000001".into(),
            status: "ready".into(),
        },
        ServerMessage::Pong,
        ServerMessage::Error {
            message: "x".into(),
        },
    ];
    for message in sent {
        let json = serde_json::to_value(&message).unwrap();
        let kind = json["type"].as_str().unwrap();
        let payload = &doc["components"]["messages"][kind]["payload"];
        assert_eq!(
            payload["properties"]["type"]["const"], kind,
            "{kind} is documented"
        );
        let documented: Vec<&str> = payload["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for field in json.as_object().unwrap().keys() {
            assert!(
                documented.contains(&field.as_str()),
                "{kind}.{field} is undocumented"
            );
        }
        for required in payload["required"].as_array().unwrap() {
            assert!(
                json.get(required.as_str().unwrap()).is_some(),
                "{kind} lacks {required}"
            );
        }
        // The operations name every message.
        assert!(
            doc["channels"]["live"]["messages"].get(kind).is_some(),
            "{kind}"
        );
    }
    let ping = &doc["components"]["messages"]["ping"]["payload"]["properties"]["type"]["const"];
    let parsed: ClientMessage = serde_json::from_value(json!({"type": ping})).unwrap();
    assert_eq!(parsed, ClientMessage::Ping);
}
