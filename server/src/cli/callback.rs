//! `aetr callback URL [--fail] [BODY]`.

use clap::Args;

use super::Exit;

#[derive(Debug, Clone, Args)]
pub struct CallbackArgs {
    /// The callback URL that the service was given (its `aetr` query parameter).
    pub url: String,
    /// Report a failure: the body is the error message.
    #[arg(long)]
    pub fail: bool,
    /// The result (or error); standard input when absent.
    pub body: Option<String>,
}

pub async fn run(_args: CallbackArgs) -> Exit {
    Exit::Usage("aetr callback is not built yet".into())
}
