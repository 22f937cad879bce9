//! `tributary-smb-worker`: one SMB connector's libsmbclient work, started by the daemon
//! with framed requests on stdin and answers on stdout (`connectors/smb`). A program of
//! its own so that only it links libsmbclient and its hundred-odd libraries: the daemon
//! and every other command start without loading them.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(tributary_connector_smb::worker::run() as u8)
}
