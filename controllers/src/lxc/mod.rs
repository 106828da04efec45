//! LxcGuest: the config a spec stands for ([`render`]) and the plan of steps from what PVE
//! has to it ([`plan`]). The reconcile loop that executes the plan lands with issue 5.

pub mod plan;
pub mod render;
