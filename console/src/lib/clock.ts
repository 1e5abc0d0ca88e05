// One ticking clock for every "3 min ago" on the page, instead of a timer per cell.
import { reactive } from "vue";

export const clock = reactive({ now: Date.now() });
setInterval(() => (clock.now = Date.now()), 15_000);
