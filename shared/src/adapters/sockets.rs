//! The WebSocket management API of the live channel: posting to a
//! connection (`POST /@connections/{id}`), asking whether one is still
//! open, and closing one. Its endpoint is
//! the API's stage URL (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`),
//! the local stack's gateway when run locally.

use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::primitives::Blob;

use crate::model::connection::ServerMessage;
use crate::{Error, adapters::aws};

#[derive(Debug, Clone)]
pub struct Sockets {
    client: Client,
}

/// What became of a message to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Sent,
    /// The connection is gone (410): forget it.
    Gone,
}

impl Sockets {
    pub fn new(sdk: &SdkConfig, management_url: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(management_url)
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }

    pub async fn post(
        &self,
        connection_id: &str,
        message: &ServerMessage,
    ) -> Result<Posted, Error> {
        let body = serde_json::to_vec(message).map_err(Error::internal)?;
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(body))
            .send()
            .await
        {
            Ok(_) => Ok(Posted::Sent),
            Err(err) if gone(&err) => Ok(Posted::Gone),
            Err(err) => Err(aws::classify(err)),
        }
    }

    /// Whether the gateway still holds a connection (`GET /@connections/{id}`).
    pub async fn is_open(&self, connection_id: &str) -> Result<bool, Error> {
        match self
            .client
            .get_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if gone(&err) => Ok(false),
            Err(err) => Err(aws::classify(err)),
        }
    }

    /// Closes a connection; one already gone counts as closed.
    pub async fn close(&self, connection_id: &str) -> Result<(), Error> {
        match self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if gone(&err) => Ok(()),
            Err(err) => Err(aws::classify(err)),
        }
    }
}

fn gone<E, R>(err: &aws_sdk_apigatewaymanagement::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata,
{
    aws::error_code(err) == Some("GoneException")
}
