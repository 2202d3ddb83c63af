import { readBlobData, type BlobStore, type Digest } from '../cas';

/**
 * The whole blob of `digest`, or undefined when the store does not hold exactly it (a blob
 * under that hash with another size is a different digest). A blob that fails verification
 * while read is a miss too: the store has removed it by then.
 */
export async function readBlob(store: BlobStore, digest: Digest): Promise<Buffer | undefined> {
  const reader = await store.get(digest.hash);
  if (!reader) return undefined;
  if (reader.digest.size !== digest.size) {
    reader.stream.destroy();
    return undefined;
  }
  return readBlobData(reader);
}
