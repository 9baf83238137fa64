//! Rampart's load tests with budgets.
//!
//! A plan (`load/plan.toml`) names scenarios after what users do (browse the board, read a task,
//! write a comment, export, transform an image), each sent to one target at a fixed arrival rate
//! (open model) or saturating it (closed model), optionally beside a peer (nginx serving the same
//! bytes, the origin with its caches off) measured in the same run. Each scenario's budgets are
//! checked, k6-style: a run with a budget missed fails. The run leaves a JSON summary that the
//! next run compares with, and an HTML report with latency histograms and per-second charts.
//!
//! The same crate runs the chaos campaign ([`chaos`], the `rampart-chaos` binary): faults
//! injected into a whole system under steady traffic, each row checked against a promise.

pub mod budget;
pub mod chaos;
pub mod compare;
pub mod cpu;
pub mod driver;
pub mod plan;
pub mod report;
pub mod runner;
pub mod stats;
pub mod vars;
