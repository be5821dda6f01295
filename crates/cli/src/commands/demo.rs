//! `wharf demo`: the seed-000 story on the embedded registry, narrated.
//!
//! A component version is built into a CTF and transferred with its image through one URL of a
//! registry (the "upload URL", as through a port-forward), then read through another URL of the same
//! registry (the "cluster URL"): every reference resolves, because wharf wrote it relative.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use futures_util::StreamExt;
use wharf_bundle::ocm::{self, Access, Located, OcmRepository, ResourceMode, TransferOptions};
use wharf_copy::{CopyOptions, Job, Silent, copy_graph};
use wharf_oci::Reference;
use wharf_sample::Sample;
use wharf_server::{Registry, ServeOptions};
use wharf_store::layout::Layout;
use wharf_store::{Address, Location, Mode, Session, SessionOptions};
use wharf_store::{ManifestRole, Op, verified};

use crate::args::DemoArgs;
use crate::output::{human_bytes, out};

const COMPONENT: &str = "example.com/component-1";
const VERSION: &str = "0.1.0";

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let temp;
    let base = match args.keep {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };

    out!("1. Starting wharf's registry with two addresses for one storage");
    let loopback = "127.0.0.1:0".parse().expect("valid address");
    let registry = Registry::bind(
        base.join("registry"),
        ServeOptions::new(vec![loopback, loopback]),
    )
    .await?;
    let (upload_port, cluster_port) = (
        registry.local_addrs()[0].port(),
        registry.local_addrs()[1].port(),
    );
    let upload = format!("127.0.0.1:{upload_port}");
    let cluster = format!("localhost:{cluster_port}");
    out!("   upload URL  http://{upload}   (the address a release engineer pushes through)");
    out!("   cluster URL http://{cluster}   (the address consumers inside the cluster read)");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(registry.run(async {
        let _ = stopped.await;
    }));

    let result = story(&base, &upload, &cluster).await;
    let _ = stop.send(());
    let _ = server.await;
    result?;
    out!(
        "Demo finished: the component version transferred through {upload} resolves completely through {cluster}."
    );
    Ok(ExitCode::SUCCESS)
}

async fn story(base: &Path, upload: &str, cluster: &str) -> Result<()> {
    let session = Session::new(SessionOptions::default())?;
    let job = Job::new(CopyOptions::default(), Arc::new(Silent));

    out!("2. Publishing a multi-arch image the component will ship");
    let image = Reference::parse(&format!("{upload}/upstream/busybox:1.36.1"))?;
    let pushed = Sample::multi_arch("busybox", 1361)
        .push(
            session
                .write(&Address::from_reference(&image))
                .await?
                .as_ref(),
            ManifestRole::Tag("1.36.1"),
        )
        .await?;
    let bytes: u64 = pushed.blobs.iter().map(|b| b.size).sum();
    out!(
        "   {image}  {}  ({})",
        pushed.root.digest,
        human_bytes(bytes)
    );

    out!("3. Building the component version into a CTF (OCM's transport format)");
    std::fs::write(base.join("config.yaml"), "replicas: 3\n")?;
    let constructor = base.join("component-constructor.yaml");
    std::fs::write(
        &constructor,
        format!(
            "components:\n- name: {COMPONENT}\n  version: {VERSION}\n  provider:\n    name: example.com\n  resources:\n  - name: image--busybox\n    type: ociImage\n    version: v1.36.1\n    access:\n      type: ociArtifact\n      imageReference: {image}\n  - name: config\n    type: blob\n    input:\n      type: file\n      path: config.yaml\n      mediaType: application/yaml\n"
        ),
    )?;
    let ctf = Location::Ctf(base.join("transport.tgz"));
    let built = ocm::build(
        &constructor,
        &OcmRepository::open(&session, &ctf, Mode::Write).await?,
        &session,
        &job,
    )
    .await?;
    session.finish().await?;
    let digest = built[0].normalised_digest();
    out!("   {ctf}//{COMPONENT}:{VERSION}  descriptor digest {digest}");

    out!("4. Transferring it with its resources through the upload URL");
    let uploaded = OcmRepository::open(
        &session,
        &Location::parse(&format!("{upload}/local/components"))?,
        Mode::Write,
    )
    .await?;
    let options = TransferOptions {
        recursive: false,
        copy_resources: true,
        mode: ResourceMode::Relative,
        overwrite: false,
        rebase: true,
    };
    let source = OcmRepository::open(&session, &ctf, Mode::Read).await?;
    ocm::transfer(
        &source, &uploaded, COMPONENT, VERSION, &session, &job, &options,
    )
    .await?;
    out!("   {upload}/local/components//{COMPONENT}:{VERSION}");

    out!("5. Reading it through the cluster URL");
    let in_cluster = OcmRepository::open(
        &session,
        &Location::parse(&format!("{cluster}/local/components"))?,
        Mode::Read,
    )
    .await?;
    let cv = in_cluster.read(COMPONENT, VERSION).await?;
    ensure!(
        cv.descriptor.normalised_digest() == digest,
        "the descriptor digest changed in transfer"
    );
    let resource = cv
        .descriptor
        .resources()
        .into_iter()
        .find(|r| r.name == "image--busybox")
        .context("the image resource is missing")?;
    if let Some(Access::RelativeOciReference { reference }) = &resource.access {
        out!("   stored access: relativeOciReference {reference}");
        ensure!(
            !reference.contains(upload),
            "the upload URL leaked into the descriptor"
        );
    }
    let located = ocm::locate(&in_cluster, &cv, &resource, true)?;
    out!("   image reference for this URL: {located}");
    ensure!(
        located.to_string().starts_with(cluster),
        "the image does not resolve through the cluster URL"
    );

    out!("6. Pulling the image through the cluster URL and checking its digest");
    let (store, root) = ocm::resolve_image(&located, &session).await?;
    ensure!(
        root.digest == pushed.root.digest,
        "pulled {}, published {}",
        root.digest,
        pushed.root.digest
    );
    let pulled = Layout::create(base.join("pulled")).await?;
    let report = copy_graph(
        store.as_ref(),
        &pulled,
        &root,
        ManifestRole::Tag("1.36.1"),
        &CopyOptions::default(),
    )
    .await?;
    out!(
        "   {} manifests and {} blobs ({}) pulled, root {} as published",
        report.manifests_copied,
        report.blobs_copied,
        human_bytes(report.bytes_copied),
        root.digest
    );
    let config = cv
        .descriptor
        .resources()
        .into_iter()
        .find(|r| r.name == "config")
        .context("config resource")?;
    if let Located::Blob { digest, .. } = ocm::locate(&in_cluster, &cv, &config, true)? {
        let blob = cv
            .local
            .get(digest.as_str())
            .context("the config blob is missing")?;
        let store = in_cluster.read_store(&in_cluster.component_path(COMPONENT))?;
        let mut body = verified(
            blob,
            Op::Fetch,
            digest.to_string(),
            store.fetch(blob).await?,
        );
        let mut content = Vec::new();
        while let Some(chunk) = body.next().await {
            content.extend_from_slice(&chunk?);
        }
        ensure!(
            content == b"replicas: 3\n",
            "the config resource came back different"
        );
        out!(
            "   the config resource, stored inside the component version, reads back intact: {digest}"
        );
    }
    Ok(())
}
