import type { Server, ServerNotifier } from "@modelcontextprotocol/server";
import type { ListKind } from "../client/pool.ts";
import type { Logger } from "../logger.ts";
import { parseViewKey, viewKey, type View } from "./views.ts";

/** What a view offers, to tell when it changed. */
export interface Listing {
  tools: string;
  agents: string;
}

/** Coalescing window of one notification round. @default 50 */
export const LIST_CHANGE_COALESCE_MS = 50;

/**
 * Tells the gateway's clients when what they see changed: after a catalog change (agents
 * coming and going, tools refreshed) or an agent's own announcement, one round (coalesced)
 * compares each view's listing with the last one sent and sends tools/prompts/resources
 * list_changed to the 2025-era sessions of that view and on its 2026-07-28 listen streams.
 */
export class ListChanges {
  private readonly listing: (view: View) => Listing;
  private readonly sessions: () => Iterable<[Server, View]>;
  private readonly logger: Logger;
  /** Publishers to the 2026-07-28 listen streams of each endpoint, by view. */
  private readonly notifiers = new Map<string, ServerNotifier>();
  private readonly listings = new Map<string, Listing>();
  /** List changes agents announced, passed on with the next round even if the listing looks the same. */
  private readonly announced = new Map<string, Set<ListKind>>();
  private pending: NodeJS.Timeout | undefined;

  constructor(o: { listing: (view: View) => Listing; sessions: () => Iterable<[Server, View]>; logger: Logger }) {
    this.listing = o.listing;
    this.sessions = o.sessions;
    this.logger = o.logger;
  }

  /** Registers the publisher of an endpoint's listen streams. */
  attach(view: View, notify: ServerNotifier): void {
    this.notifiers.set(viewKey(view), notify);
    if (!this.listings.has(viewKey(view))) this.listings.set(viewKey(view), this.listing(view));
  }

  notifier(view: View): ServerNotifier | undefined {
    return this.notifiers.get(viewKey(view));
  }

  /** An agent said one of its lists changed: the whole mesh and its passthrough pass it on. */
  announce(agent: string, list: ListKind): void {
    for (const key of [viewKey({ kind: "mesh" }), viewKey({ kind: "agent", agent })]) {
      const kinds = this.announced.get(key) ?? new Set<ListKind>();
      kinds.add(list);
      this.announced.set(key, kinds);
    }
    this.schedule();
  }

  /** Runs a notification round soon (rounds asked for meanwhile are one). */
  schedule(): void {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.round(), LIST_CHANGE_COALESCE_MS);
  }

  close(): void {
    clearTimeout(this.pending);
  }

  private round(): void {
    const sessions = [...this.sessions()];
    const views = new Map<string, View>();
    for (const [, view] of sessions) views.set(viewKey(view), view);
    for (const key of this.notifiers.keys()) views.set(key, parseViewKey(key));
    const changed = { tools: new Set<string>(), prompts: new Set<string>(), resources: new Set<string>() };
    for (const [key, view] of views) {
      const now = this.listing(view);
      const before = this.listings.get(key);
      const announced = this.announced.get(key);
      if (before?.tools !== now.tools || announced?.has("tools")) changed.tools.add(key);
      if (view.kind !== "dynamic") {
        // A new or departed agent may bring or take resources and prompts.
        const members = before?.agents !== now.agents;
        if (members || announced?.has("prompts")) changed.prompts.add(key);
        if (members || announced?.has("resources")) changed.resources.add(key);
      }
      this.listings.set(key, now);
    }
    this.announced.clear();
    const keys = new Set([...changed.tools, ...changed.prompts, ...changed.resources]);
    if (keys.size === 0) return;
    this.logger.info({ views: [...keys], sessions: sessions.length }, "catalog changed; notifying clients");
    const ignore = () => undefined;
    for (const [server, view] of sessions) {
      const key = viewKey(view);
      if (changed.tools.has(key)) void server.sendToolListChanged().catch(ignore);
      if (changed.resources.has(key)) void server.sendResourceListChanged().catch(ignore);
      if (changed.prompts.has(key)) void server.sendPromptListChanged().catch(ignore);
    }
    for (const [key, notify] of this.notifiers) {
      if (changed.tools.has(key)) notify.toolsChanged();
      if (changed.resources.has(key)) notify.resourcesChanged();
      if (changed.prompts.has(key)) notify.promptsChanged();
    }
  }
}
