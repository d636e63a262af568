//! The stack's control port (127.0.0.1:`CONSOLE_PORT`, 3003 by default):
//! what a developer does to the stack rather than through its API. Today
//! that is running a schedule now:
//! - `GET /schedules`: each scheduled function and its expression;
//! - `POST /schedules/{function}`: runs it once, answers what happened.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::schedule::Schedules;

pub fn router(schedules: Schedules) -> axum::Router {
    axum::Router::new()
        .route("/schedules", get(list))
        .route("/schedules/{function}", post(run))
        .with_state(schedules)
}

async fn list(State(schedules): State<Schedules>) -> Json<serde_json::Value> {
    let listed: Vec<serde_json::Value> = schedules
        .list()
        .into_iter()
        .map(|(function, schedule)| serde_json::json!({"function": function, "schedule": schedule}))
        .collect();
    Json(serde_json::json!({ "schedules": listed }))
}

async fn run(
    State(schedules): State<Schedules>,
    Path(function): Path<String>,
) -> (StatusCode, Json<serde_json::Value>) {
    match schedules.run(&function).await {
        Some(ran) => {
            let status = if ran.ok {
                StatusCode::OK
            } else {
                StatusCode::BAD_GATEWAY
            };
            (status, Json(serde_json::to_value(ran).unwrap_or_default()))
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": format!("{function} has no Schedule event in the template"),
                "schedules": schedules.list().into_iter().map(|(name, _)| name).collect::<Vec<_>>(),
            })),
        ),
    }
}
