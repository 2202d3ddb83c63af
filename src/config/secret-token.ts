import { z } from 'zod';

/** The shortest token accepted anywhere: 16 characters is ~95 bits even as lower-case hex. */
export const MIN_TOKEN_LENGTH = 16;

/** The placeholders of config/example.yaml and config/hybrid-ec2.yaml. */
const PLACEHOLDER = /^(change-me|replace-with)/i;

/**
 * A secret token (agent, HTTP role or cache): long enough that guessing it within the rate
 * limits is hopeless, never a placeholder copied from the examples, and visible ASCII without
 * "," so it survives an `Authorization` header and the comma-separated env overrides.
 * Messages never quote the token.
 */
export const secretToken = () =>
  z
    .string({ error: 'expected a token (a string)' })
    .min(MIN_TOKEN_LENGTH, `tokens must be at least ${MIN_TOKEN_LENGTH} characters`)
    .regex(/^[\x21-\x2b\x2d-\x7e]*$/, 'tokens are visible ASCII characters other than ","')
    .refine((t) => !PLACEHOLDER.test(t), 'replace the example token with a long random secret (e.g. openssl rand -hex 24)');
