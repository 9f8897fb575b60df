//! The `config` interface: core's resolution of a URL and options (README "URLs").

use crate::bindings::exports::polycache::cache::config::Guest;
use crate::bindings::polycache::cache::types::Error as WitError;
use crate::errors::wit;
use crate::Component;

impl Guest for Component {
    fn resolve_config(url: String, options: String) -> Result<String, WitError> {
        wit(polycache::contract::resolve_config(&url, &options))
    }
}
