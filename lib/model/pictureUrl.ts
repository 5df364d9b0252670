// The host's profile picture URL: allow-listed metadata (MeetingDescription.host), so the one rule
// for it lives here and both the model (MediaCore.createMeeting) and the operator API's schema
// (gateway/api/schemas.ts) call it; they cannot drift apart.
//
// https only, not http: the control plane and every client that shows the picture fetch this URL,
// and over plain http the request (with the host's picture, and a URL that often names the host)
// is readable and changeable on the way, and the web app would load mixed content. Nothing else
// (javascript:, data:, file:, ...) can travel in the field either.

/** The longest picture URL accepted, in characters. */
export const PICTURE_URL_MAX_LENGTH = 2048;

/** The rule in words, as error messages and the API documentation say it. */
export const PICTURE_URL_RULE = `an https URL of at most ${PICTURE_URL_MAX_LENGTH} characters`;

/** Whether `value` is an acceptable host profile picture URL (see PICTURE_URL_RULE). */
export function isPictureUrl(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > PICTURE_URL_MAX_LENGTH) return false;
  try {
    const url = new URL(value);
    // A URL with user:password@ would carry a credential to every receiver of the metadata.
    return url.protocol === 'https:' && url.hostname !== '' && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}
