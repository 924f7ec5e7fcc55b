"""The BERT model (Google BERT `modeling.py`), rebuilt for TF 2.21 `tf.compat.v1` graph mode.

Public names, signatures, variable names and arithmetic follow Google's module
(the 2019 release) so that checkpoints move both ways: every weight is a
`tf.compat.v1.get_variable` under the same scope path as Google's (`.../dense/kernel`,
`.../LayerNorm/gamma`, ...). `tf.compat.v1.layers` and `tf.contrib` no longer exist, so
`dense` and `layer_norm` below re-create them with the same variable names and math.

One addition: `BertModel(..., compute_type=tf.float32)`. With `tf.bfloat16`/`tf.float16`
the encoder computes in that type from float32 master variables (a custom getter casts
each weight on read); embeddings, LayerNorm, softmax and the pooler stay float32, so the
checkpoint is unchanged.

Longer than the project's ~400-line guide on purpose: it is one concept in Google's
layout (config, model, the layer functions it uses), kept whole so that it can be read
side by side with Google's module.
"""
from __future__ import annotations

import collections
import copy
import json
import math
import re
from typing import Any, Callable

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


class BertConfig:
    """Configuration for `BertModel` (the keys of Google's bert_config.json)."""

    def __init__(self, vocab_size: int, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072,
                 hidden_act: str = "gelu", hidden_dropout_prob: float = 0.1,
                 attention_probs_dropout_prob: float = 0.1, max_position_embeddings: int = 512,
                 type_vocab_size: int = 16, initializer_range: float = 0.02) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.hidden_act = hidden_act
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range

    @classmethod
    def from_dict(cls, json_object: dict) -> "BertConfig":
        """Like Google's: unknown keys are kept as attributes, missing ones keep defaults."""
        config = BertConfig(vocab_size=None)
        for key, value in json_object.items():
            config.__dict__[key] = value
        return config

    @classmethod
    def from_json_file(cls, json_file: str) -> "BertConfig":
        """Read and validate (checkpoint_map.read_bert_config, the one config reader)."""
        from bert.checkpoint_map import read_bert_config
        return cls.from_dict(read_bert_config(json_file))

    def to_dict(self) -> dict:
        return copy.deepcopy(self.__dict__)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def load_bert_config(json_file: str) -> BertConfig:
    """`BertConfig.from_json_file` (validated; CheckpointError naming the file and key)."""
    return BertConfig.from_json_file(json_file)


def _float32_storage_getter(compute_type: tf.DType) -> Callable:
    """Custom getter for mixed precision: variables are stored float32; a read that asks for
    `compute_type` gets a cast copy (gradients flow back to the float32 master)."""
    def getter(getter, name, shape=None, dtype=None, *args, trainable=None, **kwargs):
        trainable_ = trainable is None or trainable  # None means True in get_variable
        var = getter(name, shape, tf.float32 if trainable_ else dtype, *args,
                     trainable=trainable, **kwargs)
        if trainable_ and dtype is not None and dtype != tf.float32:
            return tf.cast(var, dtype)
        return var
    return getter


class BertModel:
    """BERT encoder ("Bidirectional Encoder Representations from Transformers").

    Variables live under `scope` (default "bert"): embeddings/, encoder/layer_N/, pooler/.
    """

    def __init__(self, config: BertConfig, is_training: bool, input_ids: tf.Tensor,
                 input_mask: tf.Tensor | None = None, token_type_ids: tf.Tensor | None = None,
                 use_one_hot_embeddings: bool = False, scope: str | None = None,
                 compute_type: tf.DType = tf.float32) -> None:
        config = copy.deepcopy(config)
        if not is_training:
            config.hidden_dropout_prob = 0.0
            config.attention_probs_dropout_prob = 0.0

        input_shape = get_shape_list(input_ids, expected_rank=2)
        batch_size, seq_length = input_shape[0], input_shape[1]
        if input_mask is None:
            input_mask = tf.ones(shape=[batch_size, seq_length], dtype=tf.int32)
        if token_type_ids is None:
            token_type_ids = tf.zeros(shape=[batch_size, seq_length], dtype=tf.int32)

        getter = None if compute_type == tf.float32 else _float32_storage_getter(compute_type)
        with tf1.variable_scope(scope, default_name="bert", custom_getter=getter):
            with tf1.variable_scope("embeddings"):
                (self.embedding_output, self.embedding_table) = embedding_lookup(
                    input_ids=input_ids, vocab_size=config.vocab_size,
                    embedding_size=config.hidden_size,
                    initializer_range=config.initializer_range,
                    word_embedding_name="word_embeddings",
                    use_one_hot_embeddings=use_one_hot_embeddings)
                self.embedding_output = embedding_postprocessor(
                    input_tensor=self.embedding_output, use_token_type=True,
                    token_type_ids=token_type_ids, token_type_vocab_size=config.type_vocab_size,
                    token_type_embedding_name="token_type_embeddings",
                    use_position_embeddings=True,
                    position_embedding_name="position_embeddings",
                    initializer_range=config.initializer_range,
                    max_position_embeddings=config.max_position_embeddings,
                    dropout_prob=config.hidden_dropout_prob)

            with tf1.variable_scope("encoder"):
                attention_mask = create_attention_mask_from_input_mask(input_ids, input_mask)
                self.all_encoder_layers = transformer_model(
                    input_tensor=tf.cast(self.embedding_output, compute_type),
                    attention_mask=attention_mask,
                    hidden_size=config.hidden_size,
                    num_hidden_layers=config.num_hidden_layers,
                    num_attention_heads=config.num_attention_heads,
                    intermediate_size=config.intermediate_size,
                    intermediate_act_fn=get_activation(config.hidden_act),
                    hidden_dropout_prob=config.hidden_dropout_prob,
                    attention_probs_dropout_prob=config.attention_probs_dropout_prob,
                    initializer_range=config.initializer_range,
                    do_return_all_layers=True)
                self.all_encoder_layers = [tf.cast(x, tf.float32) for x in self.all_encoder_layers]

            self.sequence_output = self.all_encoder_layers[-1]
            # The pooler: the first token's final hidden state -> dense -> tanh.
            with tf1.variable_scope("pooler"):
                first_token_tensor = tf.squeeze(self.sequence_output[:, 0:1, :], axis=1)
                self.pooled_output = dense(first_token_tensor, config.hidden_size,
                                           activation=tf.tanh,
                                           kernel_initializer=create_initializer(
                                               config.initializer_range))

    def get_pooled_output(self) -> tf.Tensor:
        return self.pooled_output

    def get_sequence_output(self) -> tf.Tensor:
        """[batch_size, seq_length, hidden_size] final hidden layer of the encoder."""
        return self.sequence_output

    def get_all_encoder_layers(self) -> list[tf.Tensor]:
        return self.all_encoder_layers

    def get_embedding_output(self) -> tf.Tensor:
        """Embeddings after position/type addition, LayerNorm and dropout."""
        return self.embedding_output

    def get_embedding_table(self) -> tf.Tensor:
        return self.embedding_table


def gelu(x: tf.Tensor) -> tf.Tensor:
    """Gaussian Error Linear Unit, the tanh approximation (Google's; not the erf form)."""
    # FAITHFUL: the tanh approximation the published models were trained with
    cdf = 0.5 * (1.0 + tf.tanh(
        (np.sqrt(2 / np.pi) * (x + 0.044715 * tf.pow(x, 3)))))
    return x * cdf


def get_activation(activation_string: Any) -> Callable | None:
    """Map a string ("gelu", "relu", "tanh", "linear") to a function; non-strings pass."""
    if not isinstance(activation_string, str):
        return activation_string
    if not activation_string:
        return None
    act = activation_string.lower()
    if act == "linear":
        return None
    if act == "relu":
        return tf.nn.relu
    if act == "gelu":
        return gelu
    if act == "tanh":
        return tf.tanh
    raise ValueError("Unsupported activation: %s" % act)


def get_assignment_map_from_checkpoint(tvars: list, init_checkpoint: str) -> tuple[dict, dict]:
    """Map each variable of `tvars` whose name is in the checkpoint to itself.

    Returns (assignment_map, initialized_variable_names) as Google's does; the latter has
    both `name` and `name:0` keys.
    """
    name_to_variable = collections.OrderedDict()
    for var in tvars:
        name = var.name
        m = re.match("^(.*):\\d+$", name)
        if m is not None:
            name = m.group(1)
        name_to_variable[name] = var

    assignment_map = collections.OrderedDict()
    initialized_variable_names = {}
    for name, _ in tf.train.list_variables(init_checkpoint):
        if name not in name_to_variable:
            continue
        assignment_map[name] = name
        initialized_variable_names[name] = 1
        initialized_variable_names[name + ":0"] = 1
    return assignment_map, initialized_variable_names


def dropout(input_tensor: tf.Tensor, dropout_prob: float | None) -> tf.Tensor:
    """Dropout with probability `dropout_prob` of dropping (not keeping); 0/None = identity."""
    if dropout_prob is None or dropout_prob == 0.0:
        return input_tensor
    return tf.nn.dropout(input_tensor, rate=dropout_prob)


def layer_norm(input_tensor: tf.Tensor, name: str | None = None) -> tf.Tensor:
    """LayerNorm over the last axis with variables `<name or LayerNorm>/{beta,gamma}`.

    Same arithmetic as the `tf.contrib.layers.layer_norm` Google used: moments, then
    `tf.nn.batch_normalization` with epsilon 1e-12 (as Google's). Always float32.
    """
    dtype = input_tensor.dtype
    x = tf.cast(input_tensor, tf.float32)
    width = x.shape[-1]
    with tf1.variable_scope(name, default_name="LayerNorm"):
        beta = tf1.get_variable("beta", shape=[width], dtype=tf.float32,
                                initializer=tf1.zeros_initializer())
        gamma = tf1.get_variable("gamma", shape=[width], dtype=tf.float32,
                                 initializer=tf1.ones_initializer())
        mean, variance = tf.nn.moments(x, [x.shape.rank - 1], keepdims=True)
        out = tf.nn.batch_normalization(x, mean, variance, offset=beta, scale=gamma,
                                        variance_epsilon=1e-12)
    return tf.cast(out, dtype)


def layer_norm_and_dropout(input_tensor: tf.Tensor, dropout_prob: float,
                           name: str | None = None) -> tf.Tensor:
    return dropout(layer_norm(input_tensor, name), dropout_prob)


def create_initializer(initializer_range: float = 0.02):
    """Truncated normal initializer with the given stddev."""
    return tf1.truncated_normal_initializer(stddev=initializer_range)


def dense(input_tensor: tf.Tensor, units: int, activation: Callable | None = None,
          name: str | None = None, kernel_initializer=None) -> tf.Tensor:
    """What `tf.layers.dense` did on a 2-D input: variables `<name or dense>/{kernel,bias}`.

    The variables are requested in the input's dtype so that under mixed precision the
    storage getter hands back a cast copy of the float32 weights.
    """
    with tf1.variable_scope(name, default_name="dense"):
        kernel = tf1.get_variable("kernel", shape=[input_tensor.shape[-1], units],
                                  dtype=input_tensor.dtype, initializer=kernel_initializer)
        bias = tf1.get_variable("bias", shape=[units], dtype=input_tensor.dtype,
                                initializer=tf1.zeros_initializer())
        output = tf.nn.bias_add(tf.matmul(input_tensor, kernel), bias)
        return activation(output) if activation is not None else output


def embedding_lookup(input_ids: tf.Tensor, vocab_size: int, embedding_size: int = 128,
                     initializer_range: float = 0.02,
                     word_embedding_name: str = "word_embeddings",
                     use_one_hot_embeddings: bool = False) -> tuple[tf.Tensor, tf.Variable]:
    """Look up word embeddings; returns ([batch, seq, embedding_size] float32, the table)."""
    if input_ids.shape.ndims == 2:
        input_ids = tf.expand_dims(input_ids, axis=[-1])
    embedding_table = tf1.get_variable(name=word_embedding_name,
                                       shape=[vocab_size, embedding_size], dtype=tf.float32,
                                       initializer=create_initializer(initializer_range))
    flat_input_ids = tf.reshape(input_ids, [-1])
    if use_one_hot_embeddings:
        one_hot_input_ids = tf.one_hot(flat_input_ids, depth=vocab_size)
        output = tf.matmul(one_hot_input_ids, embedding_table)
    else:
        output = tf.gather(embedding_table, flat_input_ids)
    input_shape = get_shape_list(input_ids)
    output = tf.reshape(output, input_shape[0:-1] + [input_shape[-1] * embedding_size])
    return output, embedding_table


def embedding_postprocessor(input_tensor: tf.Tensor, use_token_type: bool = False,
                            token_type_ids: tf.Tensor | None = None,
                            token_type_vocab_size: int = 16,
                            token_type_embedding_name: str = "token_type_embeddings",
                            use_position_embeddings: bool = True,
                            position_embedding_name: str = "position_embeddings",
                            initializer_range: float = 0.02, max_position_embeddings: int = 512,
                            dropout_prob: float = 0.1) -> tf.Tensor:
    """Add token-type and position embeddings, then LayerNorm and dropout."""
    input_shape = get_shape_list(input_tensor, expected_rank=3)
    batch_size, seq_length, width = input_shape
    output = input_tensor

    if use_token_type:
        if token_type_ids is None:
            raise ValueError("`token_type_ids` must be specified if `use_token_type` is True.")
        token_type_table = tf1.get_variable(name=token_type_embedding_name,
                                            shape=[token_type_vocab_size, width],
                                            dtype=tf.float32,
                                            initializer=create_initializer(initializer_range))
        # Google uses a one-hot matmul here: the vocabulary is tiny, so it is fast.
        flat_token_type_ids = tf.reshape(token_type_ids, [-1])
        one_hot_ids = tf.one_hot(flat_token_type_ids, depth=token_type_vocab_size)
        token_type_embeddings = tf.matmul(one_hot_ids, token_type_table)
        output += tf.reshape(token_type_embeddings, [batch_size, seq_length, width])

    if use_position_embeddings:
        assert_op = tf1.assert_less_equal(seq_length, max_position_embeddings)
        with tf.control_dependencies([assert_op]):
            full_position_embeddings = tf1.get_variable(
                name=position_embedding_name, shape=[max_position_embeddings, width],
                dtype=tf.float32, initializer=create_initializer(initializer_range))
            # The first seq_length rows, broadcast over the batch.
            position_embeddings = tf.slice(full_position_embeddings, [0, 0], [seq_length, -1])
            num_dims = len(output.shape.as_list())
            position_broadcast_shape = [1] * (num_dims - 2) + [seq_length, width]
            output += tf.reshape(position_embeddings, position_broadcast_shape)

    return layer_norm_and_dropout(output, dropout_prob)


def create_attention_mask_from_input_mask(from_tensor: tf.Tensor,
                                          to_mask: tf.Tensor) -> tf.Tensor:
    """[batch, from_seq, to_seq] float mask from a 2-D int `to_mask` (1 = attend)."""
    from_shape = get_shape_list(from_tensor, expected_rank=[2, 3])
    batch_size, from_seq_length = from_shape[0], from_shape[1]
    to_shape = get_shape_list(to_mask, expected_rank=2)
    to_seq_length = to_shape[1]
    to_mask = tf.cast(tf.reshape(to_mask, [batch_size, 1, to_seq_length]), tf.float32)
    broadcast_ones = tf.ones(shape=[batch_size, from_seq_length, 1], dtype=tf.float32)
    return broadcast_ones * to_mask


def attention_layer(from_tensor: tf.Tensor, to_tensor: tf.Tensor,
                    attention_mask: tf.Tensor | None = None, num_attention_heads: int = 1,
                    size_per_head: int = 512, query_act: Callable | None = None,
                    key_act: Callable | None = None, value_act: Callable | None = None,
                    attention_probs_dropout_prob: float = 0.0, initializer_range: float = 0.02,
                    do_return_2d_tensor: bool = False, batch_size: int | None = None,
                    from_seq_length: int | None = None,
                    to_seq_length: int | None = None) -> tf.Tensor:
    """Multi-headed scaled dot-product attention with variables query/key/value.

    Scores and softmax are computed in float32 whatever the compute type (the -10000
    mask adder does not fit bfloat16 precision well).
    """
    def transpose_for_scores(input_tensor, batch_size, num_attention_heads, seq_length, width):
        output_tensor = tf.reshape(input_tensor,
                                   [batch_size, seq_length, num_attention_heads, width])
        return tf.transpose(output_tensor, [0, 2, 1, 3])

    from_shape = get_shape_list(from_tensor, expected_rank=[2, 3])
    to_shape = get_shape_list(to_tensor, expected_rank=[2, 3])
    if len(from_shape) != len(to_shape):
        raise ValueError("The rank of `from_tensor` must match the rank of `to_tensor`.")
    if len(from_shape) == 3:
        batch_size, from_seq_length, to_seq_length = from_shape[0], from_shape[1], to_shape[1]
    elif batch_size is None or from_seq_length is None or to_seq_length is None:
        raise ValueError("When passing in rank 2 tensors to attention_layer, the values "
                         "for `batch_size`, `from_seq_length`, and `to_seq_length` "
                         "must all be specified.")

    from_tensor_2d = reshape_to_matrix(from_tensor)
    to_tensor_2d = reshape_to_matrix(to_tensor)
    init = create_initializer(initializer_range)
    width = num_attention_heads * size_per_head
    query_layer = dense(from_tensor_2d, width, activation=query_act, name="query",
                        kernel_initializer=init)
    key_layer = dense(to_tensor_2d, width, activation=key_act, name="key",
                      kernel_initializer=init)
    value_layer = dense(to_tensor_2d, width, activation=value_act, name="value",
                        kernel_initializer=init)

    query_layer = transpose_for_scores(query_layer, batch_size, num_attention_heads,
                                       from_seq_length, size_per_head)
    key_layer = transpose_for_scores(key_layer, batch_size, num_attention_heads,
                                     to_seq_length, size_per_head)
    # [B, N, F, T]
    attention_scores = tf.matmul(query_layer, key_layer, transpose_b=True)
    attention_scores = tf.cast(attention_scores, tf.float32)
    attention_scores = tf.multiply(attention_scores, 1.0 / math.sqrt(float(size_per_head)))
    if attention_mask is not None:
        attention_mask = tf.expand_dims(attention_mask, axis=[1])
        adder = (1.0 - tf.cast(attention_mask, tf.float32)) * -10000.0
        attention_scores += adder
    attention_probs = tf.nn.softmax(attention_scores)
    attention_probs = dropout(attention_probs, attention_probs_dropout_prob)
    attention_probs = tf.cast(attention_probs, value_layer.dtype)

    value_layer = tf.reshape(value_layer,
                             [batch_size, to_seq_length, num_attention_heads, size_per_head])
    value_layer = tf.transpose(value_layer, [0, 2, 1, 3])
    context_layer = tf.matmul(attention_probs, value_layer)  # [B, N, F, H]
    context_layer = tf.transpose(context_layer, [0, 2, 1, 3])
    if do_return_2d_tensor:
        return tf.reshape(context_layer, [batch_size * from_seq_length, width])
    return tf.reshape(context_layer, [batch_size, from_seq_length, width])


def transformer_model(input_tensor: tf.Tensor, attention_mask: tf.Tensor | None = None,
                      hidden_size: int = 768, num_hidden_layers: int = 12,
                      num_attention_heads: int = 12, intermediate_size: int = 3072,
                      intermediate_act_fn: Callable | None = gelu,
                      hidden_dropout_prob: float = 0.1,
                      attention_probs_dropout_prob: float = 0.1,
                      initializer_range: float = 0.02,
                      do_return_all_layers: bool = False) -> tf.Tensor | list[tf.Tensor]:
    """The Transformer encoder of "Attention is All You Need" (post-LayerNorm variant).

    Hidden states are kept as a 2-D [batch * seq, hidden] matrix between layers (Google's
    trick to avoid reshapes on TPU); outputs are reshaped back to 3-D.
    """
    if hidden_size % num_attention_heads != 0:
        raise ValueError("The hidden size (%d) is not a multiple of the number of attention "
                         "heads (%d)" % (hidden_size, num_attention_heads))
    attention_head_size = int(hidden_size / num_attention_heads)
    input_shape = get_shape_list(input_tensor, expected_rank=3)
    batch_size, seq_length, input_width = input_shape
    if input_width != hidden_size:
        raise ValueError("The width of the input tensor (%d) != hidden size (%d)" %
                         (input_width, hidden_size))

    init = create_initializer(initializer_range)
    prev_output = reshape_to_matrix(input_tensor)
    all_layer_outputs = []
    for layer_idx in range(num_hidden_layers):
        with tf1.variable_scope("layer_%d" % layer_idx):
            layer_input = prev_output
            with tf1.variable_scope("attention"):
                with tf1.variable_scope("self"):
                    attention_output = attention_layer(
                        from_tensor=layer_input, to_tensor=layer_input,
                        attention_mask=attention_mask, num_attention_heads=num_attention_heads,
                        size_per_head=attention_head_size,
                        attention_probs_dropout_prob=attention_probs_dropout_prob,
                        initializer_range=initializer_range, do_return_2d_tensor=True,
                        batch_size=batch_size, from_seq_length=seq_length,
                        to_seq_length=seq_length)
                with tf1.variable_scope("output"):
                    attention_output = dense(attention_output, hidden_size,
                                             kernel_initializer=init)
                    attention_output = dropout(attention_output, hidden_dropout_prob)
                    attention_output = layer_norm(attention_output + layer_input)
            with tf1.variable_scope("intermediate"):
                intermediate_output = dense(attention_output, intermediate_size,
                                            activation=intermediate_act_fn,
                                            kernel_initializer=init)
            with tf1.variable_scope("output"):
                layer_output = dense(intermediate_output, hidden_size, kernel_initializer=init)
                layer_output = dropout(layer_output, hidden_dropout_prob)
                layer_output = layer_norm(layer_output + attention_output)
                prev_output = layer_output
                all_layer_outputs.append(layer_output)

    if do_return_all_layers:
        return [reshape_from_matrix(x, input_shape) for x in all_layer_outputs]
    return reshape_from_matrix(prev_output, input_shape)


def get_shape_list(tensor: tf.Tensor, expected_rank: int | list[int] | None = None,
                   name: str | None = None) -> list:
    """The tensor's shape: Python ints for static dimensions, scalar tensors for dynamic."""
    if name is None:
        name = tensor.name if hasattr(tensor, "name") else "tensor"
    if expected_rank is not None:
        assert_rank(tensor, expected_rank, name)
    shape = tensor.shape.as_list()
    non_static_indexes = [i for i, dim in enumerate(shape) if dim is None]
    if not non_static_indexes:
        return shape
    dyn_shape = tf.shape(tensor)
    for index in non_static_indexes:
        shape[index] = dyn_shape[index]
    return shape


def reshape_to_matrix(input_tensor: tf.Tensor) -> tf.Tensor:
    """Reshape a >= rank 2 tensor to a rank 2 tensor (i.e., a matrix)."""
    ndims = input_tensor.shape.ndims
    if ndims < 2:
        raise ValueError("Input tensor must have at least rank 2. Shape = %s" %
                         (input_tensor.shape))
    if ndims == 2:
        return input_tensor
    width = input_tensor.shape[-1]
    return tf.reshape(input_tensor, [-1, width])


def reshape_from_matrix(output_tensor: tf.Tensor, orig_shape_list: list) -> tf.Tensor:
    """Reshape a rank 2 tensor back to its original rank >= 2 shape."""
    if len(orig_shape_list) == 2:
        return output_tensor
    output_shape = get_shape_list(output_tensor)
    orig_dims = orig_shape_list[0:-1]
    width = output_shape[-1]
    return tf.reshape(output_tensor, orig_dims + [width])


def assert_rank(tensor: tf.Tensor, expected_rank: int | list[int], name: str | None = None):
    """Raise ValueError if the tensor's rank is not `expected_rank` (int or list of ints)."""
    if name is None:
        name = tensor.name
    expected_rank_dict = {}
    if isinstance(expected_rank, int):
        expected_rank_dict[expected_rank] = True
    else:
        for x in expected_rank:
            expected_rank_dict[x] = True
    actual_rank = tensor.shape.ndims
    if actual_rank not in expected_rank_dict:
        scope_name = tf1.get_variable_scope().name
        raise ValueError(
            "For the tensor `%s` in scope `%s`, the actual rank `%d` (shape = %s) is not "
            "equal to the expected rank `%s`" %
            (name, scope_name, actual_rank, str(tensor.shape), str(expected_rank)))
