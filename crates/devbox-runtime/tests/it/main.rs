//! Privileged tests of the runtime: real overlay mounts, runc containers and
//! network namespaces. They need root, runc, iproute2, iptables and
//! busybox-static, and fail (never skip) when one is missing.
//!
//! They use their own bridge and subnet (`dbxtest0`, 10.78.0.0/24) and a
//! temporary root each, so they do not disturb a server running on the same
//! machine.

mod common;
mod layers;
mod lifecycle;
mod seams;
