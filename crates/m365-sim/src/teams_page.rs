//! Placeholder until the Teams page lands.
use axum::Router;

use crate::sim::Sim;

pub(crate) fn routes() -> Router<Sim> {
    Router::new()
}
