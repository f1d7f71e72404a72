//! Services on top of the vCPU mechanism: the console (the hypervisor's
//! log and every VM's UART on one physical UART), the shell, and the
//! control verbs every front end goes through.
pub mod console;
pub mod control;
pub mod shell;
