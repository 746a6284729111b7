/**
 * The package's public entry (`import ... from 'kubeproxy'`): the embedding API and the plugin
 * types. Everything else under dist/ is internal and may change in any release.
 */
export { startProxy, type ProxyConfigInput, type ProxyHandle, type StartOptions } from './embed.ts';
export { ConfigError } from './config/load.ts';
export type { Config } from './config/schema.ts';
export type {
  HeaderMap,
  HookName,
  HookResult,
  LogHookContext,
  Plugin,
  PluginContext,
  PluginFactory,
  PluginLogRecord,
  PluginRequest,
  PluginResponse,
  PluginUpstreamRequest,
  RequestHookContext,
  ResponseHookContext,
  UpstreamHookContext,
} from './plugins/api.ts';
