//! `wharf login HOST` and `wharf logout HOST`.

use crate::output::out;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use wharf_store::registry::{CredentialSource, Credentials};
use wharf_store::{ErrorKind, Session, SessionOptions};

use crate::args::{LoginArgs, LogoutArgs};

pub async fn login(args: LoginArgs) -> Result<ExitCode> {
    let password = match (args.password, args.password_stdin) {
        (Some(password), _) => password,
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from standard input")?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            rpassword::prompt_password(format!("Password for {}@{}: ", args.username, args.host))
                .context("reading the password from the terminal")?
        }
        (None, false) => bail!("give the password with --password-stdin (or -p)"),
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let credentials = Credentials::Basic {
        username: args.username.clone(),
        password,
    };
    let source = CredentialSource {
        authfile: args.authfile,
    };
    let session = Session::new(SessionOptions {
        credentials: Some(credentials.clone()),
        source: source.clone(),
        tls_verify: args.tls_verify,
        cert_dir: args.cert_dir,
        ..SessionOptions::default()
    })?;
    match session.check_credentials(&args.host).await {
        Err(e) if matches!(&*e.kind, ErrorKind::Unauthorized(_)) => bail!(
            "login to {0}: {0} refused user {1:?} with this password",
            args.host,
            args.username
        ),
        other => other.with_context(|| format!("login to {}", args.host))?,
    }
    let file = source.store(&args.host, &credentials).await?;
    out!(
        "Login succeeded: credentials for {} stored in {}",
        args.host,
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(args: LogoutArgs) -> Result<ExitCode> {
    let source = CredentialSource {
        authfile: args.authfile,
    };
    if !source.erase(&args.host).await? {
        bail!("not logged in to {}", args.host);
    }
    out!("Removed credentials for {}", args.host);
    Ok(ExitCode::SUCCESS)
}
