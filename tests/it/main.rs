mod smtp_support;
mod support;
