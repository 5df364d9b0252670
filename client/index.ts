// `c4v-media/client`: the browser SDK (see client/browser/). The Node flavour is `c4v-media/client/node`.
export * from './browser/index.js';
