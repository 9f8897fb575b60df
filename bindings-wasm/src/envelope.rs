//! The `envelope` interface: core's `codec::{encode, decode}` (docs/FORMAT.md §1).

use polycache::codec::{self, Codec, Compression, EncodeOptions, Meta};

use crate::bindings::exports::polycache::cache::envelope::{
    Decoded, EncodeOptions as WitEncodeOptions, Guest, Header,
};
use crate::bindings::polycache::cache::types::{
    Codec as WitCodec, Compression as WitCompression, Error as WitError,
};
use crate::errors::wit;
use crate::{value, Component};

impl Guest for Component {
    fn encode(value: Vec<u8>, options: WitEncodeOptions) -> Result<Vec<u8>, WitError> {
        let value = wit(value::from_wit(&value))?;
        let encode = EncodeOptions {
            codec: codec_from_wit(options.codec),
            compression: compression_from_wit(options.compression),
            compress_threshold: options.compress_threshold as usize,
        };
        let meta = Meta {
            created_at_ms: options.created_at,
            fresh_until_ms: options.fresh_until,
            schema: options.schema,
            tags: options.tags,
        };
        wit(codec::encode(&value, &encode, &meta))
    }

    fn decode(bytes: Vec<u8>) -> Result<Decoded, WitError> {
        let (header, value) = wit(codec::decode(&bytes))?;
        Ok(Decoded {
            header: Header {
                codec: codec_to_wit(header.codec),
                compression: compression_to_wit(header.compression),
                created_at: header.meta.created_at_ms,
                fresh_until: header.meta.fresh_until_ms,
                schema: header.meta.schema,
                tags: header.meta.tags,
            },
            value: value::to_wit(&value),
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
