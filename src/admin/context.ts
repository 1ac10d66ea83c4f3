import type { Principal } from '../domain/types.ts';
import type { AdminOperations } from './admin-operations.ts';

/** What every admin resolver sees: the verified admin (or service) principal and the operations. */
export interface AdminContext {
  principal: Principal;
  ops: AdminOperations;
  /** The HTTP request (its signal ends SSE subscriptions when the client goes away). */
  request: Request;
}
