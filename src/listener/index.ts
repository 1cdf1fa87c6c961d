export { startPublicListener } from "./public-listener.js";
export type {
  PublicListener,
  PublicListenerDeps,
  PublicListenerOptions,
} from "./public-listener.js";
export type { AppAddress } from "./dial-app.js";
export { TLS12_CIPHERS } from "./tls-options.js";
