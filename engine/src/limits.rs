//! Size limits on step trees. The server sets them from `AETR_MAX_*`.

/// Limits that a tree must keep. Node counts are after reuse is expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Nodes in a run's tree, after reuse is expanded.
    pub max_nodes: u64,
    /// Levels below the root.
    pub max_depth: u32,
    /// Children of one step.
    pub max_children: usize,
    /// Bytes in one mapper or reducer script.
    pub max_script_bytes: usize,
    /// Characters in a step's name.
    pub max_name_chars: usize,
    /// Bytes in an action's URL.
    pub max_url_bytes: usize,
    /// Headers on one action.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 200_000,
            max_depth: 64,
            max_children: 100_000,
            max_script_bytes: 64 * 1024,
            max_name_chars: 200,
            max_url_bytes: 2048,
            max_headers: 32,
        }
    }
}
