//! Command-line arguments (clap).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A terminal client for ferrochat.
///
/// Plain `http://` only: TLS (`https://`, `wss://`) is not supported yet;
/// put the relay behind a local tunnel or use it on a trusted network.
#[derive(Debug, Parser)]
#[command(name = "ferrochat-cli", version)]
pub struct Args {
    /// The relay's address, `http://host:port` (the WebSocket URL is
    /// derived from it). Default: the server of the saved session, else
    /// http://127.0.0.1:8080. TLS is not supported.
    #[arg(long, env = "FERROCHAT_SERVER", global = true)]
    pub server: Option<String>,
    /// Where the session token is kept. Default: `$XDG_CONFIG_HOME/ferrochat`
    /// or `~/.config/ferrochat`.
    #[arg(long, env = "FERROCHAT_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    /// What to do; without one, an interactive session (`chat`).
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create an account and save its session. The password is prompted
    /// without echo, or read from FERROCHAT_PASSWORD.
    Register {
        /// The new username.
        username: String,
    },
    /// Log in and save the session. The password is prompted without echo,
    /// or read from FERROCHAT_PASSWORD.
    Login {
        /// Your username.
        username: String,
    },
    /// Revoke the saved session's token and forget it.
    Logout,
    /// The interactive session (the default). Type `:help` in it.
    Chat,
    /// Send one message; exit 0 once the relay has stored it.
    Send {
        /// A username to send to.
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        to: Option<String>,
        /// A group to send to: its id, or the name of one of your groups.
        #[arg(long)]
        group: Option<String>,
        /// Seconds to wait for the relay's answer.
        #[arg(long, default_value_t = 15)]
        timeout: u64,
        /// The text.
        text: String,
    },
    /// Print every received message and ack it, until killed
    /// (SIGTERM or SIGINT end it cleanly).
    Listen {
        /// One JSON object per line (the protocol's message shape).
        #[arg(long)]
        json: bool,
    },
}
