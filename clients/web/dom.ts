/**
 * The page's elements (looked up once, by id) and the small helpers that only touch them: the
 * notice bar, the scroller's position, and an error's text for the page.
 */

function $<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

export const ui = {
  connection: $('connection'),
  me: $('me'),
  signout: $<HTMLButtonElement>('signout'),
  signin: $('signin'),
  signinForm: $<HTMLFormElement>('signin-form'),
  devTokens: $('dev-tokens'),
  token: $<HTMLTextAreaElement>('token'),
  signinError: $('signin-error'),
  chat: $('chat'),
  joinForm: $<HTMLFormElement>('join-form'),
  conversation: $<HTMLInputElement>('conversation'),
  tabs: $('tabs'),
  people: $('people'),
  peopleCount: $('people-count'),
  roomTitle: $('room-title'),
  leave: $<HTMLButtonElement>('leave'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $<HTMLButtonElement>('notice-close'),
  scroller: $('scroller'),
  earlier: $<HTMLButtonElement>('earlier'),
  earlierNote: $('earlier-note'),
  log: $('log'),
  messages: $('messages'),
  composer: $<HTMLFormElement>('composer'),
  message: $<HTMLTextAreaElement>('message'),
  ack: $<HTMLInputElement>('ack'),
  composerError: $('composer-error'),
  announcer: $('announcer'),
};

export function notice(text: string): void {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}

/** The notice's close button. */
export function initNotice(): void {
  ui.noticeClose.addEventListener('click', () => {
    ui.notice.hidden = true;
    ui.message.focus();
  });
}

export function isNearEnd(): boolean {
  return ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 80;
}

export function scrollToEnd(): void {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
