/** The people list of the active conversation: who is here, who is you, who is typing. */
import type { PresenceView } from './client.ts';
import { ui } from './dom.ts';
import { nameOf, session } from './state.ts';

export function renderPresence(presence: PresenceView): void {
  const members = [...presence.members.values()].sort((a, b) => nameOf(a.userId).localeCompare(nameOf(b.userId)));
  ui.people.replaceChildren(
    ...members.map((member) => {
      const li = document.createElement('li');
      li.textContent = member.name ?? nameOf(member.userId);
      if (member.userId === session.me?.userId) {
        const you = document.createElement('span');
        you.className = 'muted';
        you.textContent = ' (you)';
        li.append(you);
      }
      if (member.typing) {
        const typing = document.createElement('span');
        typing.className = 'typing';
        typing.textContent = ' typing…';
        li.append(typing);
      }
      return li;
    }),
  );
  ui.peopleCount.textContent = `(${presence.memberCount})`;
}
