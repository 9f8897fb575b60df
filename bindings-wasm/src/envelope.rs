//! The `envelope` interface: core's `contract::{encode_envelope, decode_envelope}`
//! (docs/FORMAT.md §1).

use polycache::codec::{Codec, Compression};
use polycache::contract::{self, EnvelopeOptions};

use crate::bindings::exports::polycache::cache::envelope::{
    Envelope, EnvelopeOptions as WitEnvelopeOptions, Guest,
};
use crate::bindings::polycache::cache::types::{
    Codec as WitCodec, Compression as WitCompression, Error as WitError,
};
use crate::errors::wit;
use crate::{value, Component};

impl Guest for Component {
    fn encode_envelope(value: Vec<u8>, options: WitEnvelopeOptions) -> Result<Vec<u8>, WitError> {
        let value = wit(value::from_wit(&value))?;
        let options = EnvelopeOptions {
            codec: codec_from_wit(options.codec),
            compression: compression_from_wit(options.compression),
            compress_threshold: options.compress_threshold as usize,
            created_at: options.created_at,
            fresh_until: options.fresh_until,
            schema: options.schema,
            tags: options.tags,
        };
        wit(contract::encode_envelope(&value, &options))
    }

    fn decode_envelope(bytes: Vec<u8>) -> Result<Envelope, WitError> {
        let envelope = wit(contract::decode_envelope(&bytes))?;
        Ok(Envelope {
            value: value::to_wit(&envelope.value),
            codec: codec_to_wit(envelope.codec),
            compression: compression_to_wit(envelope.compression),
            created_at: envelope.created_at,
            fresh_until: envelope.fresh_until,
            schema: envelope.schema,
            tags: envelope.tags,
            not_found: envelope.not_found,
        })
    }
}

pub(crate) fn codec_from_wit(codec: WitCodec) -> Codec {
    match codec {
        WitCodec::Bytes => Codec::Bytes,
        WitCodec::Msgpack => Codec::Msgpack,
        WitCodec::Json => Codec::Json,
    }
}

fn codec_to_wit(codec: Codec) -> WitCodec {
    match codec {
        Codec::Bytes => WitCodec::Bytes,
        Codec::Msgpack => WitCodec::Msgpack,
        Codec::Json => WitCodec::Json,
    }
}

pub(crate) fn compression_from_wit(compression: WitCompression) -> Compression {
    match compression {
        WitCompression::None => Compression::None,
        WitCompression::Lz4 => Compression::Lz4,
    }
}

fn compression_to_wit(compression: Compression) -> WitCompression {
    match compression {
        Compression::None => WitCompression::None,
        Compression::Lz4 => WitCompression::Lz4,
    }
}
