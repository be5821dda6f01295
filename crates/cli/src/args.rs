//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const LOCATIONS: &str = "\
Locations:
  HOST/REPO[:TAG][@DIGEST]         a repository of a registry
                                   (docker://NAME for Docker Hub names)
  oci:PATH[:TAG][@DIGEST]          an OCI image layout directory
                                   (as skopeo and umoci write them)
  oci-archive:FILE[:TAG][@DIGEST]  a tar of an OCI image layout
  ctf:PATH//REPO[:TAG][@DIGEST]    a repository of an OCM Common Transport
                                   Format (directory, .tar or .tgz)";

/// Move bundles of OCI artifacts between registries, mirrors and air-gap archives so that every
/// reference inside a bundle still resolves wherever it lands.
#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    propagate_version = true,
    max_term_width = 80,
    after_help = LOCATIONS
)]
pub struct Cli {
    /// More detail on stderr: -v for progress events, -vv for debugging, -vvv for everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy an image or index, with everything it references, from one location to another.
    #[command(after_help = COPY_HELP)]
    Copy(CopyArgs),
    /// Copy many images, component versions and bundles in one run: repositories, tags, sync files.
    #[command(after_help = SYNC_HELP, args_conflicts_with_subcommands = true)]
    Sync(SyncArgs),
    /// Show the manifest a location names.
    #[command(after_help = INSPECT_HELP)]
    Inspect(InspectArgs),
    /// Read back every manifest and blob of a layout, archive, CTF or repository and check them.
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Show where a pull of a reference goes: the registries.conf endpoints, in the order tried.
    #[command(after_help = RESOLVE_HELP)]
    Resolve(ResolveArgs),
    /// List the tags of a registry repository or an OCI layout.
    #[command(after_help = TAGS_HELP)]
    Tags(TagsArgs),
    /// List the repositories of a registry (its catalog), a CTF, or an OCI layout or archive.
    #[command(after_help = CATALOG_HELP)]
    Catalog(CatalogArgs),
    /// Store credentials for a registry in the auth file podman and docker read.
    #[command(after_help = LOGIN_HELP)]
    Login(LoginArgs),
    /// Remove stored credentials for a registry.
    #[command(after_help = LOGOUT_HELP)]
    Logout(LogoutArgs),
    /// Build, transfer and read OCM component versions, with references that work under any URL.
    #[command(subcommand)]
    Component(ComponentCommand),
    /// Push, copy and pull imgpkg bundles, with location records that keep every image findable.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Create indexes that group children living in nested repositories.
    #[command(subcommand)]
    Index(ImageIndexCommand),
    /// Run wharf's embedded OCI registry (distribution spec 1.1) on a local directory.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Run the main job end to end on generated content and narrate it.
    #[command(after_help = DEMO_HELP)]
    Demo(DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = COMPLETION_HELP)]
    Completion(CompletionArgs),
    /// Print wharf's manual page (roff), generated from these definitions.
    #[command(after_help = MAN_HELP)]
    Man,
}

const COMPLETION_HELP: &str = "\
Examples:
  wharf completion bash > ~/.local/share/bash-completion/completions/wharf
  wharf completion zsh > \"${fpath[1]}/_wharf\"
  wharf completion fish > ~/.config/fish/completions/wharf.fish";

const MAN_HELP: &str = "\
Examples:
  wharf man > /usr/local/share/man/man1/wharf.1
  wharf man | man -l -";

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

const COPY_HELP: &str = "\
The destination gets its own tag if it names one, else the source's tag. Blobs
and manifests the destination already has are not copied again; an image whose
root is already there costs one check. Every byte is verified against its
digest before it becomes visible at the destination. Referrers (signatures,
SBOMs) travel with the image unless --no-referrers is given; registries
without the referrers API get the sha256-<hex> tag schema. Credentials come
from --creds or from the auth files podman and docker write (see wharf login).

Examples:
  wharf copy registry.example.com/app:1.0 localhost:5000/mirror/app
  wharf copy --platform linux/arm64 docker://alpine:3.20 oci:./alpine:3.20
  wharf copy oci:./images:1.0 registry.example.com/team/app:1.0 --dest-creds \\
      bot:$TOKEN
  wharf copy --output json oci:./images:1.0 oci:./mirror
  wharf copy registry.example.com/app:1.0 oci-archive:./app.tar:1.0
  wharf copy --bundle registry.example.com/team/app-bundle:1.0 \\
      mirror.internal/apps/app-bundle

Archives (oci-archive:, ctf: .tar and .tgz) are written beside their final
name as FILE.wharf-partial and appear only when the copy has succeeded. After
an interruption, the same command resumes: what the partial file holds is
checked against its digests and kept, the rest is copied.

Locations:
  HOST/REPO[:TAG][@DIGEST]         a registry repository
                                   (docker://NAME for Docker Hub names)
  oci:PATH[:TAG][@DIGEST]          an OCI image layout directory
  oci-archive:FILE[:TAG][@DIGEST]  a tar of an OCI image layout
  ctf:PATH//REPO[:TAG][@DIGEST]    a repository of an OCM Common Transport
                                   Format";

const RESOLVE_HELP: &str = "\
wharf reads the registries.conf files skopeo and podman read and picks the
same endpoints in the same order: the mirrors of the entry with the longest
matching prefix (filtered by mirror-by-digest-only and pull-from-mirror), then
the entry's location. Each line is one endpoint, marked (insecure) or
(blocked) when set. Every read (copy, inspect, tags are excepted) tries them
in this order.

Examples:
  wharf resolve quay.io/team/app:1.0
  wharf resolve busybox --registries-conf ./registries.conf --output json
  wharf resolve registry.example.com/app@sha256:4c1e… --registries-conf-dir \\
      ./conf.d";

const VERIFY_HELP: &str = "\
Every manifest and blob below the roots is read back, its size and digest
checked, and every reference (layers, config, index children, subjects,
referrers) must be present. Without a tag or digest the roots are everything
the location names: each entry of a layout's index.json, each artifact of a
CTF (ctf:PATH checks all its repositories), each tag of a registry repository.
Archives are also checked as tars: unsafe or damaged entries are refused. Each
problem is printed on its own line; the exit status is 1 if there is any.

Examples:
  wharf verify oci-archive:./export.tar
  wharf verify ctf:./transport.tgz
  wharf verify oci:./images:1.0
  wharf verify --output json localhost:5000/team/app";

const TAGS_HELP: &str = "\
Examples:
  wharf tags localhost:5000/team/app
  wharf tags --output json registry.example.com/team/app
  wharf tags oci:./images";

const CATALOG_HELP: &str = "\
A registry's repositories come from its catalog API (below PATH when one is
given); a CTF lists the repositories of its index, an OCI layout or archive
the repository part of its image names (team/app of team/app:1.0; images named
without one are listed as an empty line).

Examples:
  wharf catalog localhost:5000
  wharf catalog --output json registry.example.com/team
  wharf catalog ctf:./airgap.tgz";

const LOGIN_HELP: &str = "\
The credentials are checked against the registry first, then written to
--authfile, else $REGISTRY_AUTH_FILE, else
$XDG_RUNTIME_DIR/containers/auth.json, else ~/.docker/config.json (through the
credential helper that file names for the registry, if any).

Examples:
  wharf login registry.example.com -u bot --password-stdin < token.txt
  wharf login localhost:5000 -u alice -p s3cret --authfile ./auth.json";

const LOGOUT_HELP: &str = "\
Examples:
  wharf logout registry.example.com
  wharf logout localhost:5000 --authfile ./auth.json";

const SYNC_HELP: &str = "\
Every source keeps its repository path below the destination prefix (rewritten
by --repo-map FROM=TO): registry.example.com/team/app synced --to
mirror.local/copy lands at mirror.local/copy/team/app. A source without a tag
brings all its tags. All images run as one job: a blob shared by several
images moves once per destination registry and is mounted into the other
repositories, and an image already at the destination costs one request. A
failing source never stops the others; the exit status is non-zero if any
failed, and --retry-failed REPORT (a report written with --output json) reruns
exactly those.

Air gaps: --to oci-archive:FILE, ctf:FILE.tar or ctf:FILE.tgz exports
everything into one archive, which appears only when every source succeeded (a
partial run leaves FILE.wharf-partial, and the same command carries on from
it, keeping what it holds after checking each digest). On the other side, an
archive as the source brings every image it records: oci-archive:FILE all its
tags, ctf:FILE every artifact it lists, each under its own repository path.

A sync file lists images (source, and optionally tags, digests, platforms,
destination), OCM components (source LOCATION//NAME:VERSION, destination,
copyResources, recursive) and imgpkg bundles (source, destination: each copied
with every image it locks into one repository, with location records, as wharf
bundle copy does; a bundle listed under images is copied alone):

  images:
  - source: registry.example.com/team/app
    tags: [\"1.0\", \"1.1\"]
  - source: quay.io/org/tool:2.3
    platforms: [linux/amd64]
  components:
  - source: ctf:./transport//acme.org/app:1.0.0
  bundles:
  - source: registry.example.com/team/app-bundle:1.0

Examples:
  wharf sync registry.example.com/team/app quay.io/org/tool:2.3 --to \\
      mirror.local/copy
  wharf sync --file sync.yaml --to mirror.local/copy --dry-run
  wharf sync --file sync.yaml --to ctf:./airgap.tgz --output json > report.json
  wharf sync ctf:./airgap.tgz --to registry.internal/mirror
  wharf sync oci-archive:./images.tar --to registry.internal/mirror
  wharf sync --retry-failed report.json --to mirror.local/copy
  wharf sync --file sync.yaml --to mirror.local/copy --shard auto/4 --output \\
      json > share.json

Several machines: --shard I/N (or auto/N in a Kubernetes Indexed Job) makes
each do its share; `wharf sync report merge` joins their reports.";

const INSPECT_HELP: &str = "\
Examples:
  wharf inspect oci:./images:1.0
  wharf inspect --tree registry.example.com/team/app:1.0
  wharf inspect --raw oci:./images:1.0 | sha256sum
  wharf inspect --output json oci:./images@sha256:4c1e…

Locations:
  oci:PATH[:TAG][@DIGEST]   an OCI image layout directory
                            (without TAG: its only image)";

const SERVE_HELP: &str = "\
The registry serves the whole distribution spec 1.1 API (pull, push, chunked
and cross-repository uploads, referrers, tags and catalog with pagination,
deletes) from one directory, or from an S3-compatible bucket (--storage
s3://BUCKET[/PREFIX]) that any number of instances serve together behind one
address: upload sessions live in the bucket too, so a push may go through
several instances. Each --listen adds an address for the same storage, so one
registry can be reached under several URLs. It prints one line
per address (`listening on http://ADDR`), then its storage, authentication and
mode, logs each request on stderr, answers GET /healthz (no credentials
needed) and serves Prometheus metrics at /metrics; it stops cleanly on SIGINT
or SIGTERM.

Examples:
  wharf serve --root ./registry --listen 127.0.0.1:5000
  wharf serve --root ./registry --listen 127.0.0.1:5000 --listen 127.0.0.1:5001
  wharf serve --root ./registry --htpasswd ./htpasswd --anonymous-read
  wharf serve --root ./registry --tls-cert cert.pem --tls-key key.pem \\
      --listen :443
  wharf serve --config /etc/wharf/serve.toml
  AWS_ENDPOINT_URL=http://minio:9000 wharf serve --storage s3://registry
  wharf serve gc --root ./registry

A configuration file:

  root = \"/var/lib/wharf\"
  listen = [\":5000\"]
  htpasswd = \"/etc/wharf/htpasswd\"
  anonymous-read = true
  log-format = \"json\"";

const GC_HELP: &str = "\
Removes blobs that no manifest of any repository references, and abandoned
uploads: upload sessions nobody finished, temporary files of killed writes,
and on object storage the multipart uploads an instance began and never
completed. Only content older than --grace is removed, so a push in progress
(on any instance) keeps its blobs; run it while the registry is stopped or
read-only to be certain.

Examples:
  wharf serve gc --root ./registry
  wharf serve gc --root ./registry --grace 0s
  wharf serve gc --storage s3://registry-bucket/site --grace 1h";

const DEMO_HELP: &str = "\
The demo runs the problem wharf exists for (OCM issue 1410) on the embedded
registry: one registry reachable under two URLs, a component version with an
image built into a CTF, transferred with its resources through the first URL
and read through the second. The image reference resolves under the second URL
because wharf stores it relative; the image is pulled and its digest checked.
Everything is removed at the end unless --keep is given.

Examples:
  wharf demo
  wharf demo --keep ./demo-output";

/// How to reach registries: shared by every command that reads or writes one.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Credentials USER:PASSWORD for every registry, instead of the auth files.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "WHARF_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<String>,
    /// Read credentials only from this auth file (docker config.json or containers auth.json format).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Verify registries' TLS certificates (--tls-verify=false to skip, as skopeo takes it).
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Also trust the CA certificates (*.crt, *.pem) in this directory.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Allow plain HTTP (and unverified TLS) for this registry host; repeatable. Loopback hosts always
    /// may use HTTP.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Upload blobs in chunks of at most this many bytes, for proxies that limit request bodies.
    #[arg(long, value_name = "BYTES", value_parser = parse_chunk_size)]
    pub chunk_size: Option<usize>,
    /// Fail a request when no byte moves in either direction for this many seconds; it is then
    /// retried like any network failure (a download resumes where it stopped).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Fail at once, instead of waiting, when another wharf process is writing a layout, archive or
    /// CTF this command writes to.
    #[arg(long)]
    pub no_wait: bool,
    /// Neither use nor update the cache of where blobs were seen on each registry (blobs found there
    /// are mounted instead of uploaded) and of what each registry supports; it is kept in
    /// $XDG_CACHE_HOME/wharf/cache.sqlite (else ~/.cache/wharf/), shared by wharf processes.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub conf: RegistriesConfArgs,
}

fn parse_chunk_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("the chunk size must be at least 1 byte".into()),
        Ok(size) => Ok(size),
        Err(e) => Err(format!("{text:?} is not a number of bytes: {e}")),
    }
}

/// Credentials for each side and how to reach registries, for commands that read in one place and
/// write in another.
#[derive(Debug, Args)]
pub struct TwoSidedArgs {
    /// Credentials USER:PASSWORD for the source side only.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub src_creds: Option<String>,
    /// Credentials USER:PASSWORD for the destination side only.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub dest_creds: Option<String>,
    /// Verify TLS certificates on the source side only (overrides --tls-verify there).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub src_tls_verify: Option<bool>,
    /// Verify TLS certificates on the destination side only (overrides --tls-verify there).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dest_tls_verify: Option<bool>,
    /// Read source credentials only from this auth file.
    #[arg(long, value_name = "FILE")]
    pub src_authfile: Option<PathBuf>,
    /// Read destination credentials only from this auth file.
    #[arg(long, value_name = "FILE")]
    pub dest_authfile: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Which registries.conf files apply (mirrors, rewrites, insecure and blocked registries).
#[derive(Debug, Args)]
pub struct RegistriesConfArgs {
    /// registries.conf to use instead of $CONTAINERS_REGISTRIES_CONF, ~/.config/containers/ or
    /// /etc/containers/registries.conf.
    #[arg(long, value_name = "FILE", conflicts_with = "no_registries_conf")]
    pub registries_conf: Option<PathBuf>,
    /// The only directory of registries.conf drop-ins (*.conf, in lexical order).
    #[arg(long, value_name = "DIR", conflicts_with = "no_registries_conf")]
    pub registries_conf_dir: Option<PathBuf>,
    /// Ignore registries.conf: read every image from where its reference points.
    #[arg(long)]
    pub no_registries_conf: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Where to copy from.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Where to copy to.
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    /// Copy only this platform of a multi-platform image (os/arch[/variant]); repeatable. The
    /// destination gets a new index listing just these.
    #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
    pub platform: Vec<wharf_oci::Platform>,
    /// SOURCE is an imgpkg bundle: copy it with every image it locks and its nested bundles, and
    /// write location records (as wharf bundle copy does). Without it a bundle is copied alone.
    #[arg(long, conflicts_with = "platform")]
    pub bundle: bool,
    #[command(flatten)]
    pub flags: CopyFlags,
}

fn parse_platform(text: &str) -> Result<wharf_oci::Platform, wharf_oci::PlatformError> {
    wharf_oci::Platform::parse(text)
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub action: Option<SyncAction>,
    /// Sources: repositories (all tags) or images (with a tag or digest).
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// A sync file (YAML) of images and components.
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Rerun exactly the failed entries of a previous run's JSON report.
    #[arg(long, value_name = "REPORT", conflicts_with_all = ["file", "sources"])]
    pub retry_failed: Option<PathBuf>,
    /// Destination prefix: a registry HOST[/PATH], oci:DIR, oci-archive:FILE or ctf:PATH.
    #[arg(long, value_name = "PREFIX", value_parser = parse_location)]
    pub to: Option<wharf_store::Location>,
    /// Rewrite source repository paths starting with FROM to start with TO; repeatable, first match wins.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_repo_map)]
    pub repo_map: Vec<(String, String)>,
    /// Only this platform of multi-platform images given on the command line; repeatable.
    #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
    pub platform: Vec<wharf_oci::Platform>,
    /// Blobs transferred at once across all images.
    #[arg(short = 'j', long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Images in progress at once (discovery of some overlaps transfer of others).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub images_at_once: u16,
    /// Show what would be copied, skipped and mounted, and how much, without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not copy referrers (signatures, SBOMs, attestations).
    #[arg(long)]
    pub no_referrers: bool,
    /// Only share I of N of the images (numbered from 0), chosen by a stable hash of each source,
    /// so N machines mirror one catalogue together; auto/N takes I from $JOB_COMPLETION_INDEX (a
    /// Kubernetes Indexed Job). Join their JSON reports with `wharf sync report merge`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<wharf_sync::Shard>,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub catalog: CatalogRecordArgs,
    #[command(flatten)]
    pub sides: TwoSidedArgs,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

fn parse_shard(text: &str) -> Result<wharf_sync::Shard, wharf_sync::ShardError> {
    let job_index = std::env::var(wharf_sync::JOB_INDEX_VARIABLE).ok();
    wharf_sync::Shard::parse(text, job_index.as_deref())
}

#[derive(Debug, Subcommand)]
pub enum SyncAction {
    /// Work with the JSON reports of syncs.
    #[command(subcommand)]
    Report(SyncReportCommand),
}

#[derive(Debug, Subcommand)]
pub enum SyncReportCommand {
    /// Join the JSON reports of the shares of one sync (--shard) into one report, on stdout.
    #[command(after_help = REPORT_MERGE_HELP)]
    Merge(ReportMergeArgs),
}

const REPORT_MERGE_HELP: &str = "\
The merged report is what a single run would have written: every image once,
what moved added up, and one retry list, so `wharf sync --retry-failed
merged.json` reruns every failure of every share. Reports that name the same
image twice are refused.

Examples:
  wharf sync report merge share-0.json share-1.json share-2.json > merged.json
  wharf sync --retry-failed merged.json --to mirror.local/copy";

#[derive(Debug, Args)]
pub struct ReportMergeArgs {
    /// Reports written by `wharf sync --output json`.
    #[arg(value_name = "REPORT", required = true)]
    pub reports: Vec<PathBuf>,
}

fn parse_location(text: &str) -> Result<wharf_store::Location, wharf_store::AddressError> {
    wharf_store::Location::parse(text)
}

fn parse_repo_map(text: &str) -> Result<(String, String), String> {
    let (from, to) = text.split_once('=').ok_or("expected FROM=TO")?;
    Ok((
        from.trim_matches('/').to_owned(),
        to.trim_matches('/').to_owned(),
    ))
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The location to inspect.
    #[arg(value_name = "LOCATION")]
    pub location: String,
    /// Print the manifest's bytes exactly as stored.
    #[arg(long, conflicts_with = "output")]
    pub raw: bool,
    /// Print the graph of manifests below it, each with the repository it is read from (index
    /// children from the nested repositories they name).
    #[arg(long, conflicts_with = "raw")]
    pub tree: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The location to check: a layout, archive, CTF (ctf:PATH for all of it) or repository.
    #[arg(value_name = "LOCATION")]
    pub location: String,
    /// Do not follow referrers (signatures, SBOMs) of the manifests checked.
    #[arg(long)]
    pub no_referrers: bool,
    /// Blobs read at once.
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// An image reference (`busybox`, `quay.io/team/app:1.0`, `host/repo@sha256:…`).
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
    #[command(flatten)]
    pub conf: RegistriesConfArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// The repository (HOST/REPO) or layout (oci:PATH).
    #[arg(value_name = "REPOSITORY")]
    pub repository: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// What to list: a registry HOST[:PORT][/PATH], oci:DIR, oci-archive:FILE or ctf:PATH.
    #[arg(value_name = "LOCATION")]
    pub location: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry host (HOST[:PORT]).
    #[arg(value_name = "REGISTRY")]
    pub host: String,
    /// User name.
    #[arg(short, long)]
    pub username: String,
    /// Password or token (visible to other local users; prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password or token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Write to this auth file.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Verify the registry's TLS certificate.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Also trust the CA certificates (*.crt, *.pem) in this directory.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry host (HOST[:PORT]).
    #[arg(value_name = "REGISTRY")]
    pub host: String,
    /// Remove from this auth file only.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Build component versions from an OCM constructor file into a CTF or registry.
    #[command(after_help = COMPONENT_BUILD_HELP)]
    Build(ComponentBuildArgs),
    /// Copy a component version (and its resources, with --copy-resources) to another location.
    #[command(after_help = COMPONENT_TRANSFER_HELP)]
    Transfer(ComponentTransferArgs),
    /// Print a component version's descriptor, its normalised digest, or a component's versions.
    #[command(after_help = COMPONENT_GET_HELP)]
    Get(ComponentGetArgs),
    /// Download a resource: a local blob to a file, an OCI artifact to an OCI layout.
    #[command(
        after_help = COMPONENT_DOWNLOAD_HELP,
        override_usage = "wharf component download [OPTIONS] COMPONENT --resource NAME --to PATH"
    )]
    Download(ComponentDownloadArgs),
    /// Print the pullable reference of a resource, computed from the location read.
    #[command(name = "image-ref", after_help = COMPONENT_IMAGE_REF_HELP)]
    ImageRef(ComponentImageRefArgs),
    /// List every component version a registry base holds (from its catalog) or a CTF holds.
    #[command(after_help = COMPONENT_LIST_HELP)]
    List(ComponentListArgs),
    /// Maintain the catalog of a registry base or CTF.
    #[command(subcommand)]
    Index(IndexCommand),
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Scan for component versions and add those the catalog lacks (for content other tools wrote).
    #[command(after_help = INDEX_REBUILD_HELP)]
    Rebuild(IndexRebuildArgs),
}

const COMPONENT_LIST_HELP: &str = "\
Every component version wharf writes (component build, transfer, sync) is
recorded in a catalog repository below the base, <base>/wharf-catalog: an
anchor and one small entry per version, so a listing is a few requests however
many there are (the referrers API where the registry has it, else its fallback
index and the entries' own tags, so no concurrent writer's entry is lost).
Without a catalog, the registry's repositories are scanned instead (its
catalog API, then every component-descriptors/ repository, its tags and
descriptors), which takes a request or more per version; wharf component index
rebuild writes the catalog for such a registry.

Filters are KEY=VALUE: name, version, provider, repository, kind or any
annotation key; a value ending in * matches a prefix. Versions are listed
newest first. A CTF is listed from its own index.

Examples:
  wharf component list registry.example.com/ocm
  wharf component list registry.example.com/ocm --filter provider=acme \\
      --filter 'name=acme.org/*'
  wharf component list ctf:./transport.tgz --output json
  wharf component list registry.example.com/ocm --verify";

const INDEX_REBUILD_HELP: &str = "\
Scans the base as wharf component list does without a catalog, and writes an
entry for every component version the catalog lacks. Running it again adds
nothing.

Examples:
  wharf component index rebuild registry.example.com/ocm";

/// Where component versions written are recorded.
#[derive(Debug, Args)]
pub struct CatalogRecordArgs {
    /// The catalog repository below the base that records every component version written.
    #[arg(long, value_name = "NAME", default_value = wharf_bundle::catalog::DEFAULT_REPOSITORY)]
    pub catalog_repository: String,
    /// Do not record the component versions written in the catalog.
    #[arg(long, conflicts_with = "catalog_repository")]
    pub no_catalog: bool,
}

impl CatalogRecordArgs {
    /// The catalog repository to record in, if any.
    pub fn repository(&self) -> Option<&str> {
        (!self.no_catalog).then_some(self.catalog_repository.as_str())
    }
}

#[derive(Debug, Args)]
pub struct ComponentListArgs {
    /// A registry base (HOST[:PORT][/PATH]) or ctf:PATH.
    #[arg(value_name = "LOCATION")]
    pub location: String,
    /// Only versions whose KEY is VALUE (a prefix with a trailing *); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_filter)]
    pub filter: Vec<wharf_bundle::catalog::Filter>,
    /// Check that each version is still stored, and leave out those that are not.
    #[arg(long)]
    pub verify: bool,
    /// The catalog repository below the base.
    #[arg(long, value_name = "NAME", default_value = wharf_bundle::catalog::DEFAULT_REPOSITORY)]
    pub catalog_repository: String,
    /// Scan the repositories even if there is a catalog.
    #[arg(long)]
    pub scan: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

fn parse_filter(text: &str) -> Result<wharf_bundle::catalog::Filter, String> {
    wharf_bundle::catalog::Filter::parse(text)
}

#[derive(Debug, Args)]
pub struct IndexRebuildArgs {
    /// A registry base (HOST[:PORT][/PATH]) or ctf:PATH.
    #[arg(value_name = "LOCATION")]
    pub location: String,
    /// The catalog repository below the base.
    #[arg(long, value_name = "NAME", default_value = wharf_bundle::catalog::DEFAULT_REPOSITORY)]
    pub catalog_repository: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

const COMPONENT_BUILD_HELP: &str = "\
The constructor file lists components: name, version, provider, labels,
resources (an ociArtifact access with an imageReference, or an input of type
file or dir stored as a local blob) and componentReferences. Image digests are
looked up and recorded; paths are relative to the file.

Examples:
  wharf component build component-constructor.yaml --to ctf:./transport
  wharf component build component-constructor.yaml --to localhost:5000/ocm

Component versions are addressed as LOCATION//NAME[:VERSION], LOCATION being a
registry base HOST[:PORT][/PATH] or ctf:PATH (a directory, .tar or .tgz).";

const COMPONENT_TRANSFER_HELP: &str = "\
With --copy-resources every OCI image resource is copied into the destination
(under its original repository path below the destination's base, tag and
digest kept) and referenced with a host-less relativeOciReference, so the
component version stays valid under any URL the registry is read from (a
reverse proxy, an in-cluster service name, a replica). --resource-mode
local-blob stores the images inside the component version instead. Without
--copy-resources, accesses stay as they are, except that references relative
to the source become the absolute references they stand for. The descriptor's
normalised digest (what signatures cover) never changes.

Examples:
  wharf component transfer ctf:./transport//acme.org/app:1.0.0 \\
      localhost:5000/local/components --copy-resources
  wharf component transfer registry.example.com/ocm//acme.org/app:1.0.0 \\
      ctf:./airgap.tgz --copy-resources --recursive

Component versions are addressed as LOCATION//NAME[:VERSION], LOCATION being a
registry base HOST[:PORT][/PATH] or ctf:PATH (a directory, .tar or .tgz).";

const COMPONENT_GET_HELP: &str = "\
Examples:
  wharf component get localhost:5000/ocm//acme.org/app:1.0.0
  wharf component get localhost:5000/ocm//acme.org/app:1.0.0 --output json
  wharf component get localhost:5000/ocm//acme.org/app:1.0.0 --digest
  wharf component get ctf:./transport//acme.org/app            # lists the \\
      versions";

const COMPONENT_DOWNLOAD_HELP: &str = "\
Examples:
  wharf component download localhost:5000/ocm//acme.org/app:1.0.0 --resource \\
      config -O config.yaml
  wharf component download localhost:5000/ocm//acme.org/app:1.0.0 --resource \\
      image -O ./image-layout";

const COMPONENT_IMAGE_REF_HELP: &str = "\
Relative references and local artifacts resolve against the location given
here, and absolute references into one of the descriptor's own repository
contexts are rebased onto it (--no-rebase turns that off), so the answer is
pullable from where the component version was read.

Examples:
  wharf component image-ref \\
      cluster-registry.svc/local/components//acme.org/app:1.0.0 --resource \\
      image";

#[derive(Debug, Args)]
pub struct ComponentBuildArgs {
    /// The constructor file (YAML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where to store the component versions: ctf:PATH or HOST[:PORT][/PATH].
    #[arg(long, value_name = "LOCATION")]
    pub to: String,
    #[command(flatten)]
    pub catalog: CatalogRecordArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ComponentTransferArgs {
    /// The component version: LOCATION//NAME:VERSION.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The destination: ctf:PATH or HOST[:PORT][/PATH].
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    /// Also transfer the component versions it references.
    #[arg(long)]
    pub recursive: bool,
    /// Copy OCI image resources into the destination.
    #[arg(long)]
    pub copy_resources: bool,
    /// How copied images are referenced.
    #[arg(long, value_enum, default_value_t = ResourceModeArg::Relative)]
    pub resource_mode: ResourceModeArg,
    /// Replace a destination version that has different content.
    #[arg(long)]
    pub overwrite: bool,
    /// Do not rebase absolute references into the source's own repository contexts.
    #[arg(long)]
    pub no_rebase: bool,
    /// Blobs to transfer at once.
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// No progress display (it is shown only on a terminal anyway).
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub catalog: CatalogRecordArgs,
    #[command(flatten)]
    pub sides: TwoSidedArgs,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// How copied images are referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResourceModeArg {
    /// A host-less relativeOciReference to the copy beside the component version.
    Relative,
    /// A localBlob: the image stored inside the component version.
    LocalBlob,
}

#[derive(Debug, Args)]
pub struct ComponentGetArgs {
    /// LOCATION//NAME[:VERSION]; without a version, the versions are listed.
    #[arg(value_name = "COMPONENT")]
    pub component: String,
    /// Print only the normalised descriptor digest (jsonNormalisation/v3, SHA-256).
    #[arg(long, conflicts_with = "output")]
    pub digest: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = DocumentFormat::Yaml)]
    pub output: DocumentFormat,
}

/// Descriptor output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocumentFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct ComponentDownloadArgs {
    /// LOCATION//NAME:VERSION.
    #[arg(value_name = "COMPONENT")]
    pub component: String,
    /// The resource's name.
    #[arg(long, value_name = "NAME")]
    pub resource: String,
    /// The file (local blobs) or OCI layout directory (images) to write.
    #[arg(short = 'O', long = "to", value_name = "PATH")]
    pub to: PathBuf,
    /// Do not rebase absolute references into the descriptor's own repository contexts.
    #[arg(long)]
    pub no_rebase: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ComponentImageRefArgs {
    /// LOCATION//NAME:VERSION.
    #[arg(value_name = "COMPONENT")]
    pub component: String,
    /// The resource's name.
    #[arg(long, value_name = "NAME")]
    pub resource: String,
    /// Do not rebase absolute references into the descriptor's own repository contexts.
    #[arg(long)]
    pub no_rebase: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Subcommand)]
pub enum ImageIndexCommand {
    /// Build an index of children in nested repositories of its own and push it.
    #[command(after_help = INDEX_CREATE_HELP)]
    Create(IndexCreateArgs),
}

const INDEX_CREATE_HELP: &str = "\
An index in team/app may group children whose home is a repository below it:
team/app/cli, team/app/docs, team/app/sbom/spdx. Each child's entry carries
the annotation dev.wharf.ref.repository (its repository relative to the
index's, e.g. cli) and, with a tag, dev.wharf.ref.tag; the index has
artifactType application/vnd.wharf.bundle.v1+json. wharf copy, sync, verify
and inspect --tree read each child from its nested repository, and copies put
it at the same relative path. Registries that want every child in the index's
own repository (most do) get copies of the children there too, tagged
wharf-<hex>, so plain clients pull the index as any other; the index's bytes
and digest stay the same everywhere.

A CHILD is PATH:TAG or PATH@DIGEST below REF's repository (cli:1.0,
sbom/spdx@sha256:…), the same with REF's repository in front
(registry.example.com/team/app/cli:1.0), or a digest in REF's own repository.

Examples:
  wharf index create registry.example.com/team/app:1.0 cli:1.0 docs:1.0 \\
      sbom/spdx:1.0
  wharf index create localhost:5000/team/app:1.0 cli@sha256:4c1e… \\
      --annotation org.opencontainers.image.version=1.0";

#[derive(Debug, Args)]
pub struct IndexCreateArgs {
    /// Where the index goes: a repository and tag.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The children, each in a repository below REF's (or in it, by digest).
    #[arg(value_name = "CHILD", required = true)]
    pub children: Vec<String>,
    /// The index's artifactType.
    #[arg(long, value_name = "TYPE", default_value = wharf_oci::nested::ARTIFACT_TYPE)]
    pub artifact_type: String,
    /// An annotation KEY=VALUE on the index; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label)]
    pub annotation: Vec<(String, String)>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Build an imgpkg bundle from a directory holding .imgpkg/images.yml and push it.
    #[command(after_help = BUNDLE_PUSH_HELP)]
    Push(BundlePushArgs),
    /// Copy a bundle, every image it locks and every nested bundle into one repository or archive.
    #[command(after_help = BUNDLE_COPY_HELP)]
    Copy(BundleCopyArgs),
    /// Write a bundle's files, with a lock pointing wherever its images are now.
    #[command(after_help = BUNDLE_PULL_HELP)]
    Pull(BundlePullArgs),
    /// Show where each image of a bundle can be pulled from now, and which rule says so.
    #[command(after_help = BUNDLE_LOCATIONS_HELP)]
    Locations(BundleLocationsArgs),
}

const BUNDLE_PUSH_HELP: &str = "\
DIR must hold .imgpkg/images.yml (an ImagesLock whose images are all locked by
digest, as kbld writes it) and may hold .imgpkg/bundle.yml; it may hold no
other .imgpkg directory. The bundle is built as imgpkg builds it (files in
lexical order, owner-only modes, zero times), so the same files always give
the same digest, and pushed under the tag (latest if none) and
sha256-<hex>.imgpkg.

Examples:
  wharf bundle push ./my-app registry.example.com/team/app-bundle:1.0
  wharf bundle push ./my-app oci:./bundles:app:1.0 --lock-output bundle.lock.yml
  wharf bundle push ./my-app localhost:5000/app-bundle:1.0 --label team=platform";

const BUNDLE_COPY_HELP: &str = "\
Everything lands in the one destination repository, digests unchanged, each
manifest tagged sha256-<hex>.imgpkg (imgpkg's --to-repo placement). Each image
is read from the bundle's own repository when it is there (a bundle copied
before), else from the reference in its lock. Once every image is at the
destination, wharf writes one location record per bundle, exactly as imgpkg
does (tag sha256-<bundle>.image-locations.imgpkg, plus an OCI artifact whose
subject is the bundle, for referrers-aware tools), then the tag: the
destination's, else the source's. A copy that fails writes no record and no
tag; running it again sends only what is missing.

SOURCE is a bundle location, a BundleLock file, or an archive written by wharf
(oci-archive:FILE, whose one bundle is found by its tag or its records).
DESTINATION is a repository in a registry, layout or CTF, or an archive
(oci-archive:FILE, resumable like every wharf archive).

Examples:
  wharf bundle copy registry.example.com/team/app-bundle:1.0 \\
      mirror.internal/apps/app-bundle
  wharf bundle copy bundle.lock.yml mirror.internal/apps/app-bundle \\
      --lock-output copied.lock.yml
  wharf bundle copy registry.example.com/team/app-bundle:1.0 \\
      oci-archive:./app-bundle.tar
  wharf bundle copy oci-archive:./app-bundle.tar \\
      registry.internal/apps/app-bundle
  wharf bundle copy registry.example.com/team/app-bundle:1.0 \\
      mirror.internal/apps/app-bundle --dry-run";

const BUNDLE_PULL_HELP: &str = "\
Where the images are decides what .imgpkg/images.yml says, by imgpkg's rules:
when the bundle's repository holds a location record, every image is there (no
probing); otherwise each image is looked up in the bundle's repository, and
only if all are there are they pointed at it; otherwise the lock keeps its
references. Order and annotations are kept. With --recursive every nested
bundle is written below .imgpkg/bundles/sha256-<hex>/ with its own lock
rewritten the same way. The files appear in DIR only once all are written.

Examples:
  wharf bundle pull mirror.internal/apps/app-bundle:1.0 -O ./app
  wharf bundle pull mirror.internal/apps/app-bundle:1.0 -O ./app --recursive";

const BUNDLE_LOCATIONS_HELP: &str = "\
Examples:
  wharf bundle locations mirror.internal/apps/app-bundle:1.0
  wharf bundle locations oci-archive:./app-bundle.tar --output json";

#[derive(Debug, Args)]
pub struct BundlePushArgs {
    /// The directory to push.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Where to: a repository with a tag (registry, oci:, oci-archive: or ctf:).
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    /// Write a BundleLock naming the pushed bundle by digest to FILE.
    #[arg(long, value_name = "FILE")]
    pub lock_output: Option<PathBuf>,
    /// A label KEY=VALUE for the bundle's config; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label)]
    pub label: Vec<(String, String)>,
    /// No progress display (it is shown only on a terminal anyway).
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

#[derive(Debug, Args)]
pub struct BundleCopyArgs {
    /// The bundle: a location, a BundleLock file, or an archive written by wharf.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The repository (or archive) everything goes to.
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    /// Write a BundleLock naming the copied bundle at the destination to FILE.
    #[arg(long, value_name = "FILE")]
    pub lock_output: Option<PathBuf>,
    /// Show what would be copied, without writing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub flags: CopyFlags,
}

/// How a copy moves content, shared by `copy` and `bundle copy`.
#[derive(Debug, Args)]
pub struct CopyFlags {
    /// Blobs to transfer at once.
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Do not copy referrers (signatures, SBOMs, attestations).
    #[arg(long)]
    pub no_referrers: bool,
    /// No progress display (it is shown only on a terminal anyway).
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub sides: TwoSidedArgs,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct BundlePullArgs {
    /// The bundle.
    #[arg(value_name = "BUNDLE")]
    pub bundle: String,
    /// The directory to write (created; must be empty unless --replace).
    #[arg(short = 'O', long = "to", value_name = "DIR")]
    pub dir: PathBuf,
    /// Also write every nested bundle, below .imgpkg/bundles/sha256-<hex>/.
    #[arg(long)]
    pub recursive: bool,
    /// Replace DIR when it is not empty (only once the new files are all written).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct BundleLocationsArgs {
    /// The bundle.
    #[arg(value_name = "BUNDLE")]
    pub bundle: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub action: Option<ServeAction>,
    #[command(flatten)]
    pub run: ServeRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum ServeAction {
    /// Remove unreferenced blobs and abandoned uploads from a registry's storage.
    #[command(after_help = GC_HELP)]
    Gc(GcArgs),
}

#[derive(Debug, Args)]
pub struct ServeRunArgs {
    /// A TOML file of settings whose keys are these flags' names (root, listen, htpasswd,
    /// anonymous-read, tls-cert, tls-key, read-only, access-log, chunk-min-length, idle-timeout,
    /// upload-expiry, log-format, storage, redirect); flags given here win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Storage directory (created if missing).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["config", "storage"])]
    pub root: Option<PathBuf>,
    /// Where the registry is kept: a directory, or s3://BUCKET[/PREFIX] on S3-compatible object
    /// storage shared by any number of instances (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN or AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL for stores other than AWS).
    #[arg(long, value_name = "LOCATION", conflicts_with = "root")]
    pub storage: Option<String>,
    /// Address to listen on, HOST:PORT or :PORT (every interface); repeat for several (port 0 picks
    /// a free one). Default 127.0.0.1:5000.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<String>,
    /// htpasswd file with bcrypt entries (htpasswd -B): every request needs valid credentials.
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// With --htpasswd: allow pulls without credentials.
    #[arg(long)]
    pub anonymous_read: bool,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse every push and delete.
    #[arg(long)]
    pub read_only: bool,
    /// Append one JSON line per request to FILE.
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Advertise OCI-Chunk-Min-Length and enforce it on chunked uploads.
    #[arg(long, value_name = "BYTES")]
    pub chunk_min_length: Option<u64>,
    /// Close a connection on which nothing moves for this many seconds, and fail a request body that
    /// stalls this long. Default 60.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: Option<u64>,
    /// Remove upload sessions untouched for this long (e.g. 30m, 24h, 2d). Default 24h.
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub upload_expiry: Option<std::time::Duration>,
    /// With object storage: answer blob GETs with a redirect to a presigned URL of the object
    /// store, valid for 20 minutes, so the bytes do not pass through wharf.
    #[arg(long)]
    pub redirect: bool,
    /// How the request log on stderr is written: text lines or JSON lines. Default text.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

/// The form of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Storage directory of the registry.
    #[arg(long, value_name = "DIR", required_unless_present = "storage")]
    pub root: Option<PathBuf>,
    /// The registry's storage: a directory, or s3://BUCKET[/PREFIX] (settings from the AWS_*
    /// variables, as for wharf serve --storage).
    #[arg(long, value_name = "LOCATION", conflicts_with = "root")]
    pub storage: Option<String>,
    /// Keep anything younger than this (e.g. 90s, 30m, 1h, 2d).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub grace: std::time::Duration,
}

/// `90s`, `30m`, `1h`, `2d`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 1h or 2d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?} needs a unit: s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(number * seconds))
}

/// A duration of at least one second.
pub fn parse_positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration(text)? {
        zero if zero.is_zero() => Err(format!("{text:?} is no time at all")),
        duration => Ok(duration),
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's layouts in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For programs: one JSON document on stdout.
    Json,
}
