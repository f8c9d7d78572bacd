// The one failure of a layer that decompresses to more than its reader allows: a bootstrap
// layer is metadata, so a gzip of gigabytes of zeros is refused while it streams.
import { OndineError } from '../../../errors.js';

export class DecodedLimitError extends OndineError {
  constructor(readonly source: string, readonly limit: number) {
    super('ONDINE_ERR_TOO_LARGE', undefined, `${source}: decompresses to more than ${limit} bytes`);
  }
}
