/**
 * Regions name where media is processed: `<country>-<site>`, e.g. `de-fra`, `at-vie`, `ch-zrh`.
 * An allow-list entry is either a country code (`DE`, `at`) that admits every site of that country,
 * or one exact region (`de-fra`).
 */
export type Region = string;

/** The default allow-list of an account: the DACH countries. */
export const DEFAULT_ALLOWED_REGIONS: readonly string[] = ['DE', 'AT', 'CH'];

const REGION_RE = /^[a-z]{2}-[a-z0-9]+$/;

/** Throws TypeError on a region name that is not `<country>-<site>` in lower case. */
export function assertRegion(region: string): void {
  if (!REGION_RE.test(region)) {
    throw new TypeError(`invalid region ${JSON.stringify(region)}: expected "<country>-<site>", e.g. "de-fra"`);
  }
}

/** Whether `region` is admitted by `allowed` (country codes or exact regions, case-insensitive). */
export function regionAllowed(region: Region, allowed: readonly string[]): boolean {
  const r = region.toLowerCase();
  const country = r.split('-')[0];
  return allowed.some((a) => {
    const x = a.toLowerCase();
    return x.includes('-') ? x === r : x === country;
  });
}
