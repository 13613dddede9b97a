//! The routes of the distribution API. Repository names have slashes of
//! their own, so a path is read from its end: the last segments say what is
//! asked for, everything before them is the name.

/// What a path under `/v2/` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: &'a str },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: &'a str, reference: &'a str },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: &'a str, digest: &'a str },
    /// `/v2/<name>/blobs/uploads/`
    Uploads { name: &'a str },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: &'a str, id: &'a str },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: &'a str, digest: &'a str },
}

impl<'a> Route<'a> {
    /// The route of `path`, the part after `/v2/`; `None` when it names
    /// nothing of the API.
    pub fn parse(path: &'a str) -> Option<Self> {
        if path == "_catalog" {
            return Some(Route::Catalog);
        }
        if let Some(name) = path.strip_suffix("/tags/list") {
            return nonempty(name).map(|name| Route::Tags { name });
        }
        let (head, last) = path.rsplit_once('/')?;
        let (name, kind) = head.rsplit_once('/')?;
        let name = nonempty(name);
        match kind {
            "manifests" if !last.is_empty() => Some(Route::Manifest {
                name: name?,
                reference: last,
            }),
            "blobs" if last == "uploads" => Some(Route::Uploads { name: name? }),
            "blobs" if !last.is_empty() => Some(Route::Blob {
                name: name?,
                digest: last,
            }),
            "referrers" if !last.is_empty() => Some(Route::Referrers {
                name: name?,
                digest: last,
            }),
            "uploads" => {
                let name = name?.strip_suffix("/blobs").and_then(nonempty)?;
                if last.is_empty() {
                    Some(Route::Uploads { name })
                } else {
                    Some(Route::Upload { name, id: last })
                }
            }
            _ => None,
        }
    }

    /// The repository the route is about; `None` for the catalog.
    pub fn repository(&self) -> Option<&'a str> {
        match *self {
            Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::Uploads { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_their_end() {
        let d = "sha256:abc";
        assert_eq!(Route::parse("_catalog"), Some(Route::Catalog));
        assert_eq!(
            Route::parse("admin/web/tags/list"),
            Some(Route::Tags { name: "admin/web" })
        );
        assert_eq!(
            Route::parse("a/b/manifests/v1"),
            Some(Route::Manifest {
                name: "a/b",
                reference: "v1"
            })
        );
        assert_eq!(
            Route::parse("bb/blobs/sha256:abc"),
            Some(Route::Blob {
                name: "bb",
                digest: d
            })
        );
        assert_eq!(
            Route::parse("bb/blobs/uploads/"),
            Some(Route::Uploads { name: "bb" })
        );
        assert_eq!(
            Route::parse("bb/blobs/uploads"),
            Some(Route::Uploads { name: "bb" })
        );
        assert_eq!(
            Route::parse("x/y/blobs/uploads/0123"),
            Some(Route::Upload {
                name: "x/y",
                id: "0123"
            })
        );
        assert_eq!(
            Route::parse("bb/referrers/sha256:abc"),
            Some(Route::Referrers {
                name: "bb",
                digest: d
            })
        );
        // A repository may have components that look like route words.
        assert_eq!(
            Route::parse("manifests/blobs/manifests/latest"),
            Some(Route::Manifest {
                name: "manifests/blobs",
                reference: "latest"
            })
        );
        assert_eq!(
            Route::parse("a/blobs/uploads/blobs/sha256:abc"),
            Some(Route::Blob {
                name: "a/blobs/uploads",
                digest: d
            })
        );
        for nothing in [
            "",
            "bb",
            "bb/manifests/",
            "/manifests/x",
            "bb/other/x",
            "blobs/uploads/",
        ] {
            assert_eq!(Route::parse(nothing), None, "{nothing}");
        }
    }
}
