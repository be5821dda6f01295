//! Writing a bundle's files to a directory, its lock rewritten to point wherever the images are now
//! (as `imgpkg pull` does), nested bundles below `.imgpkg/bundles/sha256-<hex>/` when asked.
//!
//! The files are written into a directory beside the output and moved into place at the end, so
//! the output is either the whole bundle or untouched.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use wharf_oci::Digest;
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
    let fail = |path: &Path, message: String| ImgpkgError::Directory {
        path: path.to_owned(),
        message,
    };
    let target = Target::of(output, options.replace)?;
    let root = Bundle::open(session, address).await?;
    let staging_parent = match target {
        // Inside the output itself, so that an empty mount point can be pulled into.
        Target::Empty => output.to_owned(),
        Target::Missing | Target::Occupied => {
            let parent = match output.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            std::fs::create_dir_all(&parent).map_err(|e| fail(&parent, e.to_string()))?;
            parent
        }
    };
    let staging = tempfile::Builder::new()
        .prefix(".wharf-pull-")
        .tempdir_in(&staging_parent)
        .map_err(|e| fail(&staging_parent, e.to_string()))?;
    let pulled = write_bundles(session, root, staging.path(), options.recursive)
        .await
        .map_err(|e| match e {
            // Name the file where it would have been, not where it was being written.
            ImgpkgError::Directory { path, message } => ImgpkgError::Directory {
                path: path
                    .strip_prefix(staging.path())
                    .map_or(path.clone(), |rest| output.join(rest)),
                message,
            },
            other => other,
        })?;
    target
        .fill(output, staging)
        .map_err(|e| fail(output, e.to_string()))?;
    Ok(Pulled { bundles: pulled })
}

/// What is at the output before a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Missing,
    Empty,
    /// Not empty, and to be replaced.
    Occupied,
}

impl Target {
    fn of(output: &Path, replace: bool) -> Result<Target, ImgpkgError> {
        let fail = |message: String| ImgpkgError::Directory {
            path: output.to_owned(),
            message,
        };
        let occupied = match std::fs::read_dir(output) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Missing),
            Err(e) => return Err(fail(e.to_string())),
        };
        if !occupied {
            return Ok(Target::Empty);
        }
        if !replace {
            return Err(fail(
                "exists and is not empty; choose another directory or pass --replace".into(),
            ));
        }
        let here = std::env::current_dir().and_then(|d| d.canonicalize());
        if let (Ok(here), Ok(there)) = (here, output.canonicalize())
            && here.starts_with(&there)
        {
            return Err(fail(
                "is the current directory or above it, which --replace cannot swap out; pull into another directory".into(),
            ));
        }
        Ok(Target::Occupied)
    }

    /// Puts the finished `staging` directory's content at `output`. An occupied output is moved
    /// aside first and removed only once the new one is in place; if that fails it is put back,
    /// and if even that fails, the error says where it is.
    fn fill(self, output: &Path, staging: tempfile::TempDir) -> std::io::Result<()> {
        match self {
            Target::Missing => {
                std::fs::rename(staging.path(), output)?;
                drop(staging.keep());
                Ok(())
            }
            Target::Empty => {
                for entry in std::fs::read_dir(staging.path())? {
                    let entry = entry?;
                    std::fs::rename(entry.path(), output.join(entry.file_name()))?;
                }
                Ok(())
            }
            Target::Occupied => {
                let aside = tempfile::Builder::new()
                    .prefix(".wharf-replaced-")
                    .tempdir_in(staging.path().parent().unwrap_or(Path::new(".")))?
                    .keep();
                let old = aside.join("output");
                std::fs::rename(output, &old)?;
                if let Err(e) = std::fs::rename(staging.path(), output) {
                    return match std::fs::rename(&old, output) {
                        Ok(()) => {
                            let _ = std::fs::remove_dir(&aside);
                            Err(e)
                        }
                        Err(_) => Err(std::io::Error::new(
                            e.kind(),
                            format!("{e}; what was there is kept in {}", old.display()),
                        )),
                    };
                }
                drop(staging.keep());
                std::fs::remove_dir_all(&aside)
            }
        }
    }
}

/// Writes `root` (and with `recursive` every nested bundle, each once) below `staging`.
async fn write_bundles(
    session: &Session,
    root: Bundle,
    staging: &Path,
    recursive: bool,
) -> Result<Vec<PulledBundle>, ImgpkgError> {
    let mut pulled = Vec::new();
    let mut seen = HashSet::from([root.digest().clone()]);
    let mut pending = vec![(root, PathBuf::new())];
    while let Some((bundle, path)) = pending.pop() {
        let dir = staging.join(&path);
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
        let (rule, located) = bundle.locate(&lock, record.as_ref()).await?;
        if recursive {
            for nested in nested_bundles(session, &located).await? {
                if seen.insert(nested.digest().clone()) {
                    let digest = nested.digest();
                    let name = format!("{}-{}", digest.algorithm(), digest.hex());
                    pending.push((nested, Path::new(".imgpkg/bundles").join(name)));
                }
            }
        }
        let rewritten = match (rule, bundle.registry_repository()) {
            (Rule::Record | Rule::BundleRepository, Some(repository)) => {
                let localised = localise(&lock, &repository)?;
                std::fs::write(&lock_path, localised.to_yaml()).map_err(|e| {
                    ImgpkgError::Directory {
                        path: lock_path.clone(),
                        message: e.to_string(),
                    }
                })?;
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
    Ok(pulled)
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
            let mut localised =
                LockedImage::parse(&text).map_err(|message| ImgpkgError::Invalid {
                    what: text.clone(),
                    message,
                })?;
            localised.annotations = image.annotations.clone();
            Ok(localised)
        })
        .collect::<Result<_, ImgpkgError>>()?;
    Ok(ImagesLock { images })
}
