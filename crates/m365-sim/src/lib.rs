//! Microsoft 365 simulator: the identity platform (`/{tenant}/oauth2/v2.0/…`, OIDC discovery) and
//! the Microsoft Graph chat endpoints (`/v1.0/…`) on one loopback port, plus a control API
//! (`/_sim/…`) and a small Teams page (`/_sim/teams`) for tests and the demo.
//!
//! It speaks the real wire protocol closely enough that the real Graph client cannot tell the
//! difference (sources: `graph-facts.md`, recorded payloads). It must never listen on anything
//! but 127.0.0.1 and never depend on the `regentra` crate.

mod config;
mod control;
pub mod demo;
mod error;
mod graph;
mod identity;
mod model;
mod odata;
mod query;
mod scenario;
mod sim;
mod teams_page;
mod timefmt;
mod tokens;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{ClockStart, GraphErrorSpec, RateLimit, SimConfig, ThrottleLimits};
pub use error::SimError;
pub use scenario::{
    ExternalAccess, ExternalAccessMode, Scenario, ScenarioApp, ScenarioChat, ScenarioTenant,
    ScenarioUser,
};
pub use sim::{ControlError, PostOutcome, Sim, UserPost};
pub use tokens::decode_claims;

/// The whole simulator as an axum router (identity, Graph, control API, Teams page).
pub fn router(sim: Sim) -> Router {
    let observed =
        identity::routes()
            .merge(graph::routes())
            .layer(axum::middleware::from_fn_with_state(
                sim.clone(),
                odata::observe,
            ));
    control::routes()
        .merge(teams_page::routes())
        .merge(observed)
        .with_state(sim)
}

/// Entry point for starting a simulator on 127.0.0.1.
pub struct Simulator;

impl Simulator {
    /// Binds `127.0.0.1:<config.port>` (0 = random) and serves until [`RunningSimulator::shutdown`].
    pub async fn start(
        config: SimConfig,
        scenario: Scenario,
    ) -> Result<RunningSimulator, SimError> {
        let port = config.port;
        let sim = Sim::new(config, &scenario)?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .map_err(|source| SimError::Bind { port, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| SimError::Bind { port, source })?;
        let base_url = url::Url::parse(&format!("http://{address}"))
            .map_err(|e| SimError::ScenarioInvalid(format!("internal: base URL: {e}")))?;
        let cancel = CancellationToken::new();
        let app = router(sim.clone());
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .map_err(SimError::Serve)
        });
        tracing::info!(sim.base_url = %base_url, "Microsoft 365 simulator listening");
        Ok(RunningSimulator {
            base_url,
            sim,
            cancel,
            task,
        })
    }
}

/// A simulator serving on a loopback port.
pub struct RunningSimulator {
    base_url: url::Url,
    sim: Sim,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), SimError>>,
}

impl RunningSimulator {
    /// `http://127.0.0.1:PORT` — both the authority URL and the Graph URL for the app.
    pub fn base_url(&self) -> url::Url {
        self.base_url.clone()
    }

    /// In-process access to the simulated world (same operations as the control API).
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(self) -> Result<(), SimError> {
        self.cancel.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(join_error) => Err(SimError::Serve(std::io::Error::other(
                join_error.to_string(),
            ))),
        }
    }
}

/// Runs the simulator until `shutdown` completes (what `regentra sim` calls).
pub async fn run_until_shutdown(
    config: SimConfig,
    scenario: Scenario,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SimError> {
    let running = Simulator::start(config, scenario).await?;
    shutdown.await;
    running.shutdown().await
}
