//! Kafka's printed form of a UUID (`org.apache.kafka.common.Uuid.toString`): URL-safe
//! base64 of its 16 bytes, without padding, so always 22 characters. Member ids of
//! consumer groups (KIP-848) and topic ids are shown this way; the broker and the client
//! both print them here.

/// `bytes` (a UUID, most significant byte first) as Kafka prints it.
pub fn kafka_uuid_string(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut buffer = [0u8; 3];
        buffer[..chunk.len()].copy_from_slice(chunk);
        let n = (u32::from(buffer[0]) << 16) | (u32::from(buffer[1]) << 8) | u32::from(buffer[2]);
        let sextets = chunk.len() + 1;
        for i in 0..sextets {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_kafka_does() {
        // Kafka: new Uuid(0, 0).toString() and new Uuid(-1, -1).toString().
        assert_eq!(kafka_uuid_string(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(kafka_uuid_string(&[0xff; 16]), "_____________________w");
    }
}
