// Virtual-hosted-style addressing: with a configured domain such as `s3.example.com`, a request
// to Host `photos.s3.example.com` addresses bucket `photos` and its whole path is the key. Any
// other Host (the bare domain, an IP address, a name we do not serve) falls back to path-style,
// which is what S3 does for its own regional endpoints.
import { parseTarget, type RequestTarget } from './request-target.js';

/** Lowercased domains from a comma-separated setting; empty entries are dropped. */
export function parseDomains(text: string | undefined): string[] {
  if (text === undefined) return [];
  return text
    .split(',')
    .map((d) => d.trim().toLowerCase().replace(/^\.+|\.+$/g, ''))
    .filter((d) => d !== '');
}

/** The host name without its port; IPv6 literals keep their brackets. */
export function hostName(hostHeader: string): string {
  const host = hostHeader.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end < 0 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

/** The bucket a Host header names under one of `domains`, or undefined for a path-style request. */
export function bucketFromHost(hostHeader: string | undefined, domains: readonly string[]): string | undefined {
  if (hostHeader === undefined || hostHeader === '' || domains.length === 0) return undefined;
  const host = hostName(hostHeader).replace(/\.$/, ''); // a fully qualified "name." is the same host
  // The longest domain wins, so that `s3.example.com` and `example.com` can both be served.
  const domain = [...domains].sort((a, b) => b.length - a.length).find((d) => host.endsWith(`.${d}`));
  if (domain === undefined) return undefined;
  const bucket = host.slice(0, host.length - domain.length - 1);
  return bucket === '' ? undefined : bucket;
}

/** Bucket and key of a request, from its Host header and its raw (still encoded) path. */
export function requestTarget(rawPath: string, hostHeader: string | undefined, domains: readonly string[]): RequestTarget {
  return parseTarget(rawPath, bucketFromHost(hostHeader, domains));
}
