//! Services on top of the vCPU mechanism: the console (the hypervisor's
//! log and every VM's UART on one physical UART), the shell, the
//! maintenance link (a second UART for a person and `blinkctl`), and the
//! control verbs every front end goes through.
pub mod access;
pub mod console;
pub mod control;
pub mod maint_link;
pub mod shell;
