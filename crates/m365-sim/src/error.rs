//! Errors the simulator's library API returns to its callers (tests, the CLI, the demo).
//! HTTP-level errors are not here: those are Graph/Entra responses built in `odata` and `identity`.

/// Why the simulator could not start or load a scenario.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not read scenario file {path}: {source}; check the path and permissions")]
    ScenarioRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "scenario file {path} is not valid scenario JSON: {source}; see the m365-sim README for the format"
    )]
    ScenarioParse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("scenario is inconsistent: {0}")]
    ScenarioInvalid(String),
    #[error(
        "could not bind the simulator to 127.0.0.1:{port}: {source}; pick another port or use 0 for a random one"
    )]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator server stopped with an error: {0}")]
    Serve(#[source] std::io::Error),
}
