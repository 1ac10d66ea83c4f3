/** CONTRACT §3: 1–128 characters of `[A-Za-z0-9_.:-]`. The one definition both planes check. */
export const CONVERSATION_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

export function isConversationId(value: string): boolean {
  return CONVERSATION_ID_PATTERN.test(value);
}
