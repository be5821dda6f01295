//! Writing a bundle's files to a directory, its lock rewritten to point wherever the images are now
//! (as `imgpkg pull` does), nested bundles below `.imgpkg/bundles/sha256-<hex>/` when asked.
//!
//! The files are written into a directory beside the output and moved into place at the end, so
//! the output is either the whole bundle or untouched.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use wharf_oci::{Digest, Reference};
use wharf_store::{Address, Session};

use super::bundle::{Bundle, Located, Rule};
use super::lock::{ImagesLock, LockedImage};
use super::{IMAGES_LOCK_PATH, ImgpkgError};

/// How a pull runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullOptions {
    /// Also write every nested bundle, below `.imgpkg/bundles/`.
    pub recursive: bool,
    /// Replace an output directory that is not empty.
    pub replace: bool,
}

/// One bundle written.
#[derive(Debug, Clone)]
pub struct PulledBundle {
    /// Its digest.
    pub digest: Digest,
    /// Where it was read.
    pub source: Address,
    /// Where its files are, relative to the output (empty for the root).
    pub path: PathBuf,
    /// What decided where its images are.
    pub rule: Rule,
    /// The images its lock names.
    pub images: usize,
    /// Whether its `.imgpkg/images.yml` was rewritten to the new locations.
    pub rewritten: bool,
}

/// What a pull wrote: the root bundle first.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Each bundle written.
    pub bundles: Vec<PulledBundle>,
}

/// Writes the bundle `address` names into `output`; see the module documentation.
pub async fn pull(
    session: &Session,
    address: &Address,
    output: &Path,
    options: PullOptions,
) -> Result<Pulled, ImgpkgError> {
    let fail = |message: String| ImgpkgError::Directory {
        path: output.to_owned(),
        message,
    };
    let occupied = match std::fs::read_dir(output) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(fail(e.to_string())),
    };
    if occupied && !options.replace {
        return Err(fail(
            "exists and is not empty; choose another directory or pass --replace".into(),
        ));
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let root = Bundle::open(session, address).await?;
    std::fs::create_dir_all(&parent).map_err(|e| fail(e.to_string()))?;
    let staging = tempfile::Builder::new()
        .prefix(".wharf-pull-")
        .tempdir_in(&parent)
        .map_err(|e| fail(e.to_string()))?;

    let mut pulled = Vec::new();
    let mut seen = HashSet::from([root.digest().clone()]);
    let mut pending = vec![(root, PathBuf::new())];
    while let Some((bundle, path)) = pending.pop() {
        let dir = staging.path().join(&path);
        bundle.extract(&dir).await?;
        let lock_path = dir.join(IMAGES_LOCK_PATH);
        let lock = std::fs::read_to_string(&lock_path)
            .map_err(|e| e.to_string())
            .and_then(|text| ImagesLock::parse(&text))
            .map_err(|message| ImgpkgError::Invalid {
                what: format!("bundle {} {IMAGES_LOCK_PATH}", bundle.address),
                message,
            })?;
        let record = bundle.record().await?;
        let located = bundle.locate(&lock, record.as_ref()).await?;
        if options.recursive {
            for nested in nested_bundles(session, &located).await? {
                if seen.insert(nested.digest().clone()) {
                    let hex = nested.digest().hex().to_owned();
                    let algorithm = nested.digest().algorithm();
                    pending.push((
                        nested,
                        PathBuf::from(format!(".imgpkg/bundles/{algorithm}-{hex}")),
                    ));
                }
            }
        }
        let rule = located.first().map_or(Rule::Original, |l| l.rule);
        let rewritten = match (rule, bundle.registry_repository()) {
            (Rule::Record | Rule::BundleRepository, Some(repository)) => {
                let localised = localise(&lock, &repository)?;
                std::fs::write(&lock_path, localised.to_yaml())
                    .map_err(|e| fail(format!("{}: {e}", lock_path.display())))?;
                true
            }
            _ => false,
        };
        pulled.push(PulledBundle {
            digest: bundle.digest().clone(),
            source: bundle.address.clone(),
            path,
            rule,
            images: lock.images.len(),
            rewritten,
        });
    }

    move_into_place(staging, output, occupied).map_err(|e| fail(e.to_string()))?;
    Ok(Pulled { bundles: pulled })
}

/// Moves the finished `staging` directory to `output`. An `occupied` output is moved aside first
/// and removed only once the new one is in place; it is put back if that fails.
fn move_into_place(
    staging: tempfile::TempDir,
    output: &Path,
    occupied: bool,
) -> std::io::Result<()> {
    if !occupied {
        // Over nothing, or over an empty directory.
        return std::fs::rename(staging.path(), output).map(|()| drop(staging.keep()));
    }
    let aside = tempfile::Builder::new()
        .prefix(".wharf-replaced-")
        .tempdir_in(staging.path().parent().unwrap_or(Path::new(".")))?;
    let old = aside.path().join("output");
    std::fs::rename(output, &old)?;
    if let Err(e) = std::fs::rename(staging.path(), output) {
        std::fs::rename(&old, output)?;
        return Err(e);
    }
    drop(staging.keep());
    Ok(())
}

/// The bundles among `located`, read where they are now: the record's word that an image is no
/// bundle is taken; every other image is checked for the label.
async fn nested_bundles(
    session: &Session,
    located: &[Located],
) -> Result<Vec<Bundle>, ImgpkgError> {
    let mut bundles = Vec::new();
    for entry in located.iter().filter(|l| l.is_bundle != Some(false)) {
        let store = session.read(&entry.address).await?;
        let descriptor = store.resolve(entry.image.digest().as_str()).await?;
        if let Some(bundle) = Bundle::at(store, &entry.address.with(None, None), descriptor).await?
        {
            bundles.push(bundle);
        }
    }
    Ok(bundles)
}

/// `lock` with every image at `repository`, order and annotations kept.
fn localise(lock: &ImagesLock, repository: &str) -> Result<ImagesLock, ImgpkgError> {
    let images = lock
        .images
        .iter()
        .map(|image| {
            let text = format!("{repository}@{}", image.digest());
            let reference = Reference::parse(&text).map_err(|e| ImgpkgError::Invalid {
                what: text.clone(),
                message: e.reason.to_string(),
            })?;
            Ok(LockedImage {
                image: text,
                reference,
                annotations: image.annotations.clone(),
            })
        })
        .collect::<Result<_, ImgpkgError>>()?;
    Ok(ImagesLock { images })
}
