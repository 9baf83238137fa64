//! One request and what every step of its flow needs to know about it.

use worker::{Context, Request, Response};

use crate::config::EdgeConfig;
use crate::forward::{self, Deadline, OriginError, Outgoing, Validators};
use crate::respond::Security;

/// One request and what every step needs to know about it.
pub(crate) struct Exchange<'a> {
    pub(crate) request: &'a Request,
    pub(crate) config: &'a EdgeConfig,
    pub(crate) ctx: &'a Context,
    /// The method as sent, upper-cased (unknown methods included).
    pub(crate) method: String,
    /// The request id: in logs, sent to the origin, and on the answer.
    pub(crate) id: &'a str,
    pub(crate) security: Security,
    /// When the origin's answer is due.
    pub(crate) deadline: Deadline,
}

impl Exchange<'_> {
    pub(crate) fn id(&self) -> &str {
        self.id
    }

    pub(crate) fn head(&self) -> bool {
        self.method == "HEAD"
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.request.headers().get(name).ok().flatten()
    }

    pub(crate) fn log(&self, event: &str) {
        worker::console_error!("rampart-edge: request {}: {event}", self.id());
    }

    /// Sends the request on to the origin at `target`, as it came, or as a revalidation with
    /// a stored response's `validators`.
    pub(crate) async fn forward(
        &self,
        target: &str,
        validators: Option<&Validators>,
    ) -> Result<Response, OriginError> {
        let outgoing = Outgoing {
            method: &self.method,
            target,
            fill: validators,
            request_id: self.id(),
        };
        forward::to_origin(self.request, &outgoing, self.config, self.deadline).await
    }
}
