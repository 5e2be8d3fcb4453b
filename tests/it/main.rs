mod browser;
mod crash;
mod delivery;
mod ops;
mod recipients;
mod smtp_support;
mod support;
