//! The wire codec of every RPC: prost's, except that a message that does not decode is the
//! sender's fault. tonic answers such a request INTERNAL, which must mean a fault of ours only;
//! here it is INVALID_ARGUMENT (`MALFORMED_MESSAGE`) naming what could not be read.

use crate::error::{Error, Reason};
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstCodec;

/// [`ProstCodec`] with decode failures answered INVALID_ARGUMENT.
pub struct ProtoCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = CheckedDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(self.0.decoder())
    }
}

/// A decoder whose failures are the sender's (INVALID_ARGUMENT).
pub struct CheckedDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for CheckedDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(buf).map_err(|e| {
            Error::InvalidRequest {
                reason: Reason::MalformedMessage,
                field: String::new(),
                message: format!(
                    "the message is not a valid protobuf encoding of {} ({})",
                    std::any::type_name::<D::Item>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("the request"),
                    e.message()
                ),
            }
            .into()
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
