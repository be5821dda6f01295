//! What a person at a terminal sees: wharf run under a pseudo-terminal (util-linux `script`), its
//! progress display captured as drawn.

use std::path::Path;
use std::process::Command;

use crate::util::{gen_layout, htpasswd, seed_images, serve, temp};

/// Runs wharf with `args` on a 120-column pseudo-terminal; returns its exit status and everything it
/// wrote there.
fn on_terminal(dir: &Path, args: &[&str]) -> (bool, String) {
    typed_on_terminal(dir, args, "")
}

/// [`on_terminal`], with `typed` entered at the terminal.
fn typed_on_terminal(dir: &Path, args: &[&str], typed: &str) -> (bool, String) {
    use std::io::{Read, Write};
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_wharf"))
        .chain(args.iter().copied())
        .map(|arg| format!("'{}'", arg.replace('\'', r"'\''")))
        .collect();
    let mut child = Command::new("script")
        .args([
            "-qefc",
            &format!("stty cols 120 rows 40; {}", quoted.join(" ")),
        ])
        .arg("/dev/null")
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    // What is typed goes in once wharf has asked (its prompt ends with `: `), as a person would:
    // typed earlier, the terminal would echo it before wharf could turn echoing off.
    let mut stdout = child.stdout.take().expect("piped");
    let mut seen = Vec::new();
    if !typed.is_empty() {
        let mut byte = [0u8; 1];
        while !seen.ends_with(b": ") && stdout.read(&mut byte).unwrap_or(0) == 1 {
            seen.push(byte[0]);
        }
    }
    if !typed.is_empty() {
        // The prompt is written just before echoing is turned off; a person takes longer.
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(typed.as_bytes()).unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&seen).into_owned(),
    )
}

/// The numbers following each `marker` in the drawing, in order (`eta 12s` → 12).
fn numbers_after(text: &str, marker: &str) -> Vec<f64> {
    text.split(marker)
        .skip(1)
        .filter_map(|rest| {
            let number: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            number.parse().ok()
        })
        .collect()
}

#[test]
fn a_sync_shows_bytes_rate_eta_and_a_line_per_image_and_quiet_shows_nothing() {
    let dir = temp();
    let dir = dir.path();
    let source = serve(dir, &[]);
    let names = seed_images(dir, source.addr(), 30, "64K");
    std::fs::create_dir_all(dir.join("target")).unwrap();
    let target = serve(&dir.join("target"), &[]);
    let prefix = format!("{}/mirror", target.addr());
    let mut args = vec!["sync", "--no-cache", "--to", &prefix];
    args.extend(names.iter().map(String::as_str));
    let (ok, drawn) = on_terminal(dir, &args);
    assert!(ok, "{drawn}");
    for name in &names {
        let line = drawn
            .lines()
            .find(|l| l.contains(&format!("{name}:")) && l.contains("copied  "));
        assert!(line.is_some(), "no line for {name}: {drawn}");
    }
    assert!(drawn.contains("in flight"), "{drawn}");
    assert!(drawn.contains("iB/s"), "a rate: {drawn}");
    assert!(drawn.contains("eta "), "{drawn}");
    assert!(drawn.contains("synced 31 images in "), "{drawn}");

    let again = format!("{}/again", target.addr());
    let mut args = vec!["sync", "--quiet", "--no-cache", "--to", &again];
    args.extend(names.iter().map(String::as_str));
    let (ok, drawn) = on_terminal(dir, &args);
    assert!(ok, "{drawn}");
    assert_eq!(drawn.trim(), "", "--quiet prints nothing on success");
}

#[test]
fn a_one_gib_copy_shows_bytes_and_an_eta_that_move_with_them() {
    let dir = temp();
    let dir = dir.path();
    let layout = dir.join("big");
    gen_layout(&layout, 1, 1, 0, "1G");
    let target = serve(dir, &[]);
    let (ok, drawn) = on_terminal(
        dir,
        &[
            "copy",
            "--no-cache",
            &format!("oci:{}:img0", layout.display()),
            &format!("{}/big/app:1", target.addr()),
        ],
    );
    assert!(ok, "{drawn}");
    // Each frame draws `DONE/TOTAL`, e.g. `512.00 MiB/1.00 GiB`.
    let moved: Vec<f64> = drawn
        .split("/1.00 GiB")
        .collect::<Vec<_>>()
        .split_last()
        .map(|(_, frames)| frames)
        .unwrap_or_default()
        .iter()
        .filter_map(|frame| {
            let mut tokens = frame.split_whitespace().rev();
            let unit = tokens.next()?;
            let number: f64 = tokens.next()?.parse().ok()?;
            Some(match unit {
                "GiB" => number * 1024.0,
                "MiB" => number,
                "KiB" => number / 1024.0,
                _ => number / (1024.0 * 1024.0),
            })
        })
        .collect();
    assert!(
        moved.len() >= 3 && moved.windows(2).all(|w| w[0] <= w[1]),
        "bytes drawn as they move: {moved:?}\n{drawn}"
    );
    let etas = numbers_after(&drawn, "eta ");
    let distinct: std::collections::BTreeSet<u64> = etas.iter().map(|e| *e as u64).collect();
    assert!(distinct.len() >= 2, "the ETA moves: {etas:?}\n{drawn}");
    assert!(drawn.contains("Copied "), "{drawn}");
}

#[test]
fn login_asks_for_the_password_on_a_terminal_without_echoing_it() {
    let dir = temp();
    let dir = dir.path();
    let file = htpasswd(dir);
    let served = serve(dir, &["--htpasswd", file.to_str().unwrap()]);
    let (ok, drawn) = typed_on_terminal(
        dir,
        &[
            "login",
            served.addr(),
            "-u",
            "alice",
            "--authfile",
            "auth.json",
        ],
        "s3cret\n",
    );
    assert!(ok, "{drawn}");
    assert!(
        drawn.contains(&format!("Password for alice@{}:", served.addr())),
        "{drawn}"
    );
    assert!(drawn.contains("Login succeeded"), "{drawn}");
    assert!(
        !drawn.contains("s3cret"),
        "the password was echoed: {drawn}"
    );
}
