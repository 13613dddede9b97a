//! Integration tests of the layer crate. Most need root (device nodes,
//! owners, `trusted.*` xattrs, overlay mounts) and fail loudly without it.

mod hostile_props;
mod incremental;
mod incremental_props;
mod normalize;
mod overlay;
mod peers;
mod round_trip;
mod squash_props;
mod support;
mod write_layer;
